"""The judge client against a local chat-completions server (http.server in a thread, canned replies), and the
two judged benchmarks (LLaVA-Bench in-the-wild, MM-Vet) scored through it from tiny official-layout files."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import compose_config
from hydra.utils import instantiate

from genixer.evaluation.gpt_judge import (
    LLAVA_BENCH_RULE,
    LLAVA_BENCH_SYSTEM,
    MM_VET_PROMPT,
    ChatJudge,
    JudgeError,
    JudgeUnavailable,
    LLaVABenchBenchmark,
    MMVetBenchmark,
    parse_grade,
    parse_review_scores,
)

KEY = "GENIXER_TEST_JUDGE_KEY"


class Server:
    """Records each request; ``reply(body) -> (status, content)`` answers it."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.reply = lambda body: (200, "0 0")
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "auth": self.headers["Authorization"], "body": body})
                status, content = server.reply(body)
                data = json.dumps({"model": body["model"] + "-served",
                                   "choices": [{"message": {"role": "assistant", "content": content}}]}
                                  if status == 200 else {"error": content}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv(KEY, "sk-test")
    s = Server()
    yield s
    s.http.shutdown()
    s.http.server_close()


def judge(server, **kw) -> ChatJudge:
    return ChatJudge(base_url=server.url, api_key_env=KEY, backoff_s=0.0, **kw)


def test_chat_request_and_retries(server):
    client = judge(server, model="gpt-x", temperature=0.2, max_tokens=7, retries=2)
    server.reply = lambda body: (200, "8 9\nfine")
    reply = client.chat([{"role": "user", "content": "hi"}])
    assert (reply.content, reply.model) == ("8 9\nfine", "gpt-x-served")
    request = server.requests[-1]
    assert (request["path"], request["auth"]) == ("/v1/chat/completions", "Bearer sk-test")
    assert request["body"] == {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}],
                               "temperature": 0.2, "max_tokens": 7}
    client.chat([{"role": "user", "content": "x"}], temperature=1.5, max_tokens=3)
    assert (server.requests[-1]["body"]["temperature"], server.requests[-1]["body"]["max_tokens"]) == (1.5, 3)
    statuses = iter([429, 503, 200])   # rate limit and server error are retried
    server.reply = lambda body: (next(statuses), "ok")
    server.requests.clear()
    assert client.chat([{"role": "user", "content": "x"}]).content == "ok" and len(server.requests) == 3
    server.reply = lambda body: (503, "down")
    server.requests.clear()
    with pytest.raises(JudgeError, match="no reply after 3 attempts"):
        client.chat([{"role": "user", "content": "x"}])
    server.reply = lambda body: (401, "bad key")
    server.requests.clear()
    with pytest.raises(JudgeError, match="HTTP 401"):   # not retried
        client.chat([{"role": "user", "content": "x"}])
    assert len(server.requests) == 1


def test_unavailable_without_the_key(monkeypatch):
    monkeypatch.delenv(KEY, raising=False)
    client = ChatJudge(api_key_env=KEY)
    with pytest.raises(JudgeUnavailable, match=f"benchmark llava_bench .*{KEY}"):
        client.require("llava_bench")
    with pytest.raises(JudgeUnavailable, match=KEY):
        client.chat([{"role": "user", "content": "x"}])


def test_review_and_grade_parsing():
    assert parse_review_scores("8 9\nbecause") == (8.0, 9.0)
    assert parse_review_scores("8,9.5") == (8.0, 9.5)
    for bad in ("8, 9", "8 9 ", "Scores: 8 9", "", "eight nine"):   # LLaVA's split(' ') needs exactly two parts
        assert parse_review_scores(bad) == (-1.0, -1.0), bad
    assert parse_grade("0.7") == 0.7 and parse_grade("1.0\n") == 1.0 and parse_grade("0.4 because") == 0.4
    for bad in ("1.1", "-0.1", "0.5.", "nan", "Correctness: 0.5"):
        assert parse_grade(bad) is None, bad


# --------------------------------------------------------------------------------------------
# LLaVA-Bench in-the-wild
# --------------------------------------------------------------------------------------------

def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def datasets(tmp_path) -> Path:
    root = tmp_path / "datasets"
    bench = root / "llava-bench-in-the-wild"
    write_jsonl(bench / "questions.jsonl", [
        {"question_id": 0, "image": "001.jpg", "text": "What is the name of this mountain?", "category": "conv"},
        {"question_id": 1, "image": "001.jpg", "text": "Describe this photo in detail.", "category": "detail"},
        {"question_id": 2, "image": "002.jpg", "text": "Why is it funny?", "category": "complex"}])
    write_jsonl(bench / "context.jsonl", [{"id": "001", "image": "001.jpg", "caption": "Diamond Head.\nA crater."},
                                          {"id": "002", "image": "002.jpg", "caption": ["A dog.", "On a sofa."]}])
    write_jsonl(bench / "answers_gpt4.jsonl", [
        {"question_id": q, "prompt": "p", "answer_id": f"a{q}", "model_id": "gpt-4-0314", "text": t}
        for q, t in [(0, "Diamond Head."), (1, "A volcanic crater by the sea."), (2, "The dog looks bored.")]])
    (bench / "images").mkdir()
    (root / "mm-vet/images").mkdir(parents=True)
    (root / "mm-vet/mm-vet.json").write_text(json.dumps({
        "v1_0": {"imagename": "v1_0.png", "capability": ["ocr", "math"], "question": "What is x in the equation?",
                 "answer": "-1<AND>-5"},
        "v1_1": {"imagename": "v1_1.jpg", "capability": ["rec"], "question": "Who is this?", "answer": "Elon Musk"},
        "v1_2": {"imagename": "v1_2.jpg", "capability": ["rec", "know"], "question": "Why?", "answer": "rain"}}))
    return root


def configured(name: str, datasets: Path, server: Server, *overrides: str):
    cfg = compose_config("evaluate", [f"paths.datasets={datasets}", f"paths.output_dir={datasets.parent / 'out'}",
                                      f"benchmark={name}", f"benchmark.judge.base_url={server.url}",
                                      f"benchmark.judge.api_key_env={KEY}", "benchmark.judge.backoff_s=0", *overrides])
    return instantiate(cfg.benchmark)


def test_llava_bench_relative_score(server, datasets):
    bench = configured("llava_bench", datasets, server)
    assert isinstance(bench, LLaVABenchBenchmark) and bench.needs_judge
    assert bench.questions()[0] == {"question_id": 0, "image": "001.jpg", "category": "conv",
                                    "text": "What is the name of this mountain?"}   # no suffix
    replies = {"What is the name": "8 6\nAssistant 2 is vaguer.", "Describe this": "10,5\nDetail.",
               "Why is it funny": "9 2\nEmpty answer."}
    server.reply = lambda body: (200, next(v for k, v in replies.items() if k in body["messages"][1]["content"]))
    result = bench.score({"0": "A mountain.", "1": "A photo of the sea."})   # question 2 unanswered
    first = server.requests[0]["body"]
    assert (first["model"], first["temperature"], first["max_tokens"]) == ("gpt-4-0314", 0.2, 1024)
    assert first["messages"] == [
        {"role": "system", "content": LLAVA_BENCH_SYSTEM},
        {"role": "user", "content": "[Context]\nDiamond Head.\nA crater.\n\n[Question]\nWhat is the name of this mountain?"
                                    "\n\n[Assistant 1]\nDiamond Head.\n\n[End of Assistant 1]\n\n[Assistant 2]\nA mountain."
                                    "\n\n[End of Assistant 2]\n\n[System]\n" + LLAVA_BENCH_RULE["prompt"] + "\n\n"}]
    third = server.requests[2]["body"]["messages"][1]["content"]
    assert "[Context]\nA dog.\nOn a sofa.\n\n" in third and "[Assistant 2]\n\n\n[End of Assistant 2]" in third
    # reference 8 + 10 + 9 = 27; model 6 + 5 + 0 (unanswered: its 2 is dropped) = 11
    assert (result["n"], result["missing"], result["unparsed"]) == (3, 1, 0)
    assert result["score"] == pytest.approx(100 * 11 / 27)
    assert (result["relative_conv"], result["relative_detail"], result["relative_complex"]) == (75.0, 50.0, 0.0)
    assert result["reference_score"] == pytest.approx(90.0) and result["model_score"] == pytest.approx(110 / 3)
    with pytest.raises(ValueError, match="does not have"):
        bench.score({"3": "x"})


def test_llava_bench_unparsed_reviews_count_as_minus_one(server, datasets, tmp_path):
    bench = configured("llava_bench", datasets, server, f"benchmark.review_file={tmp_path / 'reviews.jsonl'}")
    replies = {"What is the name": "8, 6\nA comma and a space.", "Describe this": "10 5\nok", "Why is it funny": "6 3\nok"}
    server.reply = lambda body: (200, next(v for k, v in replies.items() if k in body["messages"][1]["content"]))
    answers = {"0": "a", "1": "b", "2": "c"}
    result = bench.score(answers)
    # (-1, -1) is averaged in, as LLaVA's summary does: reference -1 + 10 + 6 = 15, model -1 + 5 + 3 = 7
    assert result["unparsed"] == 1 and result["score"] == pytest.approx(100 * 7 / 15)
    assert result["relative_conv"] == pytest.approx(100.0)   # -1 / -1
    reviews = [json.loads(line) for line in (tmp_path / "reviews.jsonl").read_text().splitlines()]
    assert [r["tuple"] for r in reviews] == [[-1.0, -1.0], [10.0, 5.0], [6.0, 3.0]]
    server.requests.clear()
    assert bench.score(answers) == result and server.requests == []   # logged reviews are reused
    bench.score({**answers, "2": "changed"})
    assert len(server.requests) == 1   # only the changed answer is judged again


def test_judged_benchmarks_stop_without_the_key(server, datasets, monkeypatch):
    for name in ("llava_bench", "mm_vet"):
        bench = configured(name, datasets, server)
        monkeypatch.delenv(KEY)
        with pytest.raises(JudgeUnavailable, match=f"benchmark {name} .*{KEY}"):
            bench.score({})
        monkeypatch.setenv(KEY, "sk-test")
    assert server.requests == []


# --------------------------------------------------------------------------------------------
# MM-Vet
# --------------------------------------------------------------------------------------------

def test_mm_vet_grades(server, datasets):
    bench = configured("mm_vet", datasets, server)
    assert isinstance(bench, MMVetBenchmark) and bench.needs_judge
    assert bench.questions()[0] == {"question_id": 0, "image": "v1_0.png", "text": "What is x in the equation?",
                                    "capability": ["ocr", "math"]}
    replies = {"What is x": ["0.5"], "Who is this": ["Sure, the", "0.8"]}   # a bad reply, then asked again
    row = lambda body: body["messages"][0]["content"][len(MM_VET_PROMPT):]
    server.reply = lambda body: (200, next(v for k, v in replies.items() if k in row(body)).pop(0))
    result = bench.score({"0": "x = -1", "1": "Musk"})   # v1_2 unanswered: 0, never sent
    bodies = [r["body"] for r in server.requests]
    assert len(bodies) == 3
    assert bodies[0] == {"model": "gpt-4-0613", "temperature": 0.0, "max_tokens": 3, "messages": [
        {"role": "user", "content": MM_VET_PROMPT + "\nWhat is x in the equation? | -1 <AND> -5 | x = -1 | "}]}
    assert MM_VET_PROMPT.endswith("| 1.0\n") and MM_VET_PROMPT.startswith("Compare the ground truth and prediction")
    assert bodies[2]["messages"][0]["content"].endswith(
        "\nWho is this? | Elon Musk | Musk | \nPredict the correctness of the answer (digit): ")
    assert bodies[2]["temperature"] == 0.0   # the first re-ask keeps the temperature; later ones add 0.5
    assert (result["n"], result["missing"]) == (3, 1)
    assert result["score"] == pytest.approx(100 * (0.5 + 0.8 + 0.0) / 3)
    assert (result["score_ocr"], result["score_math"], result["score_know"]) == (50.0, 50.0, 0.0)
    assert result["score_rec"] == pytest.approx(40.0)   # (0.8 + 0) / 2
    with pytest.raises(ValueError, match="does not have"):
        bench.score({"v1_0": "x"})


def test_mm_vet_gives_up_after_five_bad_replies(server, datasets):
    bench = MMVetBenchmark("m", str(datasets / "mm-vet/mm-vet.json"), str(datasets / "mm-vet/images"),
                           judge={"base_url": server.url, "api_key_env": KEY, "max_tokens": 3, "backoff_s": 0})
    server.reply = lambda body: (200, "I think 0.5")
    value, contents = bench.grade("q", "a", "p")
    assert (value, len(contents)) == (0.0, 5)
    assert [r["body"]["temperature"] for r in server.requests] == [0.0, 0.0, 0.5, 1.0, 1.5]
