"""GPT-judged benchmarks (LLaVA-Bench in-the-wild, MM-Vet) and the judge client they call.

The client speaks the OpenAI chat-completions API over ``urllib`` (any compatible server: set ``base_url``);
its key is read from the environment variable ``api_key_env``, never from a config file. Without it,
:meth:`ChatJudge.require` raises :class:`JudgeUnavailable` naming the variable and the benchmark, so a
caller can stop that benchmark after writing the answers file and score it later.

Judged benchmarks have ``needs_judge = True`` and take ``judge`` (a :class:`ChatJudge` or its settings as
a mapping). Each judge reply can be logged to ``review_file`` (JSON lines); a later run reuses the logged
reply of a (question, answer, judge model) triple instead of asking again, so an interrupted or repeated
scoring costs nothing twice.
"""
from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from genixer.data.sources.files import AnnotationError, field, read_json
from genixer.evaluation.benchmarks import _check_known
from genixer.runs.files import read_jsonl


class JudgeUnavailable(RuntimeError):
    """The judge's API key is not set: the benchmark cannot be scored here (its answers stay valid)."""


class JudgeError(RuntimeError):
    """The judge server refused a request, or kept failing after the retries."""


@dataclass(frozen=True)
class JudgeReply:
    content: str
    model: str   # the model the server says answered (may be more specific than the one asked for)


class ChatJudge:
    """An OpenAI-compatible chat-completions client: POST ``{base_url}/chat/completions``.

    ``temperature`` and ``max_tokens`` are the defaults of :meth:`chat`; ``retries`` more attempts follow a
    rate limit (429), a server error (5xx) or a network failure, waiting ``backoff_s * 2**k`` seconds before
    retry ``k``; any other HTTP error raises :class:`JudgeError` at once.
    """

    def __init__(self, base_url: str = "https://api.openai.com/v1", model: str = "gpt-4-0613",
                 api_key_env: str = "OPENAI_API_KEY", temperature: float = 0.0, max_tokens: int = 1024,
                 retries: int = 5, backoff_s: float = 2.0, timeout_s: float = 120.0) -> None:
        if retries < 0 or backoff_s < 0 or timeout_s <= 0 or max_tokens < 1:
            raise ValueError("retries and backoff_s must be >= 0, timeout_s > 0 and max_tokens >= 1")
        self.base_url, self.model, self.api_key_env = base_url.rstrip("/"), model, api_key_env
        self.temperature, self.max_tokens = float(temperature), int(max_tokens)
        self.retries, self.backoff_s, self.timeout_s = int(retries), float(backoff_s), float(timeout_s)
        self.sleep = time.sleep

    def __repr__(self) -> str:
        return f"ChatJudge(model={self.model!r}, base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None

    def require(self, benchmark: str) -> None:
        """Raise :class:`JudgeUnavailable` unless the key's environment variable is set."""
        if self.api_key() is None:
            raise JudgeUnavailable(
                f"benchmark {benchmark} is scored by a GPT judge ({self.model} at {self.base_url}), and the "
                f"environment variable {self.api_key_env} that holds its API key is not set; the answers file "
                f"stays valid: set {self.api_key_env} and score it again")

    def chat(self, messages: Sequence[Mapping[str, str]], temperature: float | None = None,
             max_tokens: int | None = None) -> JudgeReply:
        key = self.api_key()
        if key is None:
            raise JudgeUnavailable(f"the environment variable {self.api_key_env} (the judge's API key) is not set")
        body = json.dumps({"model": self.model, "messages": [dict(m) for m in messages],
                           "temperature": self.temperature if temperature is None else float(temperature),
                           "max_tokens": self.max_tokens if max_tokens is None else int(max_tokens)}).encode()
        request = urllib.request.Request(f"{self.base_url}/chat/completions", data=body, method="POST",
                                         headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    data = json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as err:
                text = err.read().decode("utf-8", "replace")[:500]
                if err.code != 429 and err.code < 500:
                    raise JudgeError(f"{self.base_url}: HTTP {err.code} for model {self.model}: {text}") from None
                problem = f"HTTP {err.code}: {text}"
                continue
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                problem = f"{type(err).__name__}: {err}"
                continue
            except json.JSONDecodeError as err:
                problem = f"reply is not JSON ({err})"
                continue
            try:
                content = data["choices"][0]["message"]["content"]
            except (KeyError, IndexError, TypeError):
                raise JudgeError(f"{self.base_url}: reply lacks choices[0].message.content: {str(data)[:300]}") from None
            return JudgeReply(content=content or "", model=str(data.get("model", self.model)))
        raise JudgeError(f"{self.base_url}: no reply after {self.retries + 1} attempts (last: {problem})")


def as_judge(judge: ChatJudge | Mapping | None) -> ChatJudge:
    """A :class:`ChatJudge` from itself, from its settings (a mapping, e.g. a config node) or the defaults (None)."""
    if isinstance(judge, ChatJudge):
        return judge
    if judge is None:
        return ChatJudge()
    if isinstance(judge, Mapping):
        return ChatJudge(**{str(k): v for k, v in judge.items() if k != "_target_"})
    raise TypeError(f"judge must be a ChatJudge or a mapping of its settings, got {type(judge).__name__}")


class _ReviewLog:
    """Judge replies as JSON lines, keyed by (question_id, judged answer text, judge model)."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None

    def load(self) -> dict[tuple[str, str, str], dict]:
        if self.path is None or not self.path.is_file():
            return {}
        return {(str(r["question_id"]), r["answer"], r["judge_model"]): r for r in read_jsonl(self.path)}

    def append(self, record: dict) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()


def _jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise AnnotationError(f"{path}: file not found")
    return read_jsonl(path)


# --------------------------------------------------------------------------------------------
# LLaVA-Bench (in-the-wild)
# --------------------------------------------------------------------------------------------

LLAVA_BENCH_SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
# The three llava_bench_* entries of LLaVA's llava/eval/table/rule.json (identical for conv / detail / complex).
LLAVA_BENCH_RULE = {"role": "Assistant", "prompt": (
    "We would like to request your feedback on the performance of two AI assistants in response to the user "
    "question displayed above. The user asks the question on observing an image. For your reference, the visual "
    "content in the image is represented with a few sentences describing the image. \nPlease rate the helpfulness, "
    "relevance, accuracy, level of details of their responses. Each assistant receives an overall score on a scale "
    "of 1 to 10, where a higher score indicates better overall performance.\nPlease first output a single line "
    "containing only two values indicating the scores for Assistant 1 and 2, respectively. The two scores are "
    "separated by a space.\nIn the subsequent line, please provide a comprehensive explanation of your evaluation, "
    "avoiding any potential bias and ensuring that the order in which the responses were presented does not "
    "affect your judgment.")}


def parse_review_scores(review: str) -> tuple[float, float]:
    """The two scores on a review's first line, as LLaVA ``eval_gpt_review_bench.parse_score`` reads them:
    commas become spaces, the line is split on single spaces and must give exactly two numbers; anything
    else is ``(-1, -1)``, which the official summary averages in like a real score (kept on purpose).
    So ``"8 9"`` and ``"8,9"`` parse, while ``"8, 9"`` (two spaces after the comma) and ``"8 9 "`` do not."""
    parts = review.split("\n")[0].replace(",", " ").split(" ")
    if len(parts) != 2:
        return (-1.0, -1.0)
    try:
        return (float(parts[0]), float(parts[1]))
    except ValueError:
        return (-1.0, -1.0)


class LLaVABenchBenchmark:
    """LLaVA-Bench (in-the-wild), the ``liuhaotian/llava-bench-in-the-wild`` layout: ``questions.jsonl``
    ({question_id, image, text, category: conv|detail|complex}), ``context.jsonl`` ({image, caption}),
    ``answers_gpt4.jsonl`` (the GPT-4 reference answers, by question_id), ``images/``.

    Prompt: the question as written (LLaVA-1.5 adds no suffix). Each answer is reviewed as LLaVA's
    ``eval_gpt_review_bench.py`` does: system ``LLAVA_BENCH_SYSTEM``; user ``[Context]`` (the image's caption
    lines), ``[Question]``, ``[Assistant 1]`` = the GPT-4 reference, ``[Assistant 2]`` = the model, ``[System]``
    = the rule (``rule``: LLaVA's ``rule.json``, entry ``llava_bench_<category>``; default: its text,
    :data:`LLAVA_BENCH_RULE`). Scores: :func:`parse_review_scores`. ``score`` = the relative score of
    ``summarize_gpt_review.py``: mean model score / mean reference score x 100 (the sums' ratio); details the
    same per category (``relative_conv`` ...), the two means x 10 and ``unparsed`` reviews.

    Official settings (conf/benchmark/llava_bench.yaml): judge ``gpt-4-0314``, temperature 0.2, 1024 tokens.
    A missing answer is reviewed as an empty answer (for the reference's score) and its model score set to 0.
    """

    needs_judge = True

    def __init__(self, name: str, questions: str, context: str, reference_answers: str, image_root: str,
                 judge: ChatJudge | Mapping | None = None, rule: str | None = None,
                 review_file: str | None = None, answering: Mapping | None = None) -> None:
        self.answering = dict(answering or {})  # generation settings the answering loop uses for this benchmark
        self.name, self.questions_path, self.context_path = name, Path(questions), Path(context)
        self.reference_path, self.image_root = Path(reference_answers), Path(image_root)
        self.judge, self.rule_path, self.reviews = as_judge(judge), Path(rule) if rule else None, _ReviewLog(review_file)

    def questions(self) -> list[dict]:
        out = []
        for k, q in enumerate(_jsonl(self.questions_path)):
            where = f"{self.questions_path}:{k + 1}"
            out.append({"question_id": field(q, "question_id", where), "image": field(q, "image", where),
                        "text": field(q, "text", where), "category": field(q, "category", where)})
        return out

    def rule(self, category: str) -> dict:
        if self.rule_path is None:
            if category not in ("conv", "detail", "complex"):   # the categories rule.json has (LLaVA asserts it)
                raise AnnotationError(f"{self.questions_path}: category {category!r} has no llava_bench rule")
            return LLAVA_BENCH_RULE
        rules = read_json(self.rule_path)
        key = f"llava_bench_{category}"
        if not isinstance(rules, dict) or key not in rules:
            raise AnnotationError(f"{self.rule_path}: no rule {key!r} (LLaVA's llava/eval/table/rule.json has it)")
        return rules[key]

    @staticmethod
    def review_prompt(caption: str, question: str, reference: str, answer: str, rule: Mapping[str, str]) -> str:
        role = rule["role"]
        return (f"[Context]\n{caption}\n\n[Question]\n{question}\n\n"
                f"[{role} 1]\n{reference}\n\n[End of {role} 1]\n\n[{role} 2]\n{answer}\n\n[End of {role} 2]\n\n"
                f"[System]\n{rule['prompt']}\n\n")

    def score(self, answers: Mapping[str, str]) -> dict:
        questions = self.questions()
        ids = [str(q["question_id"]) for q in questions]
        _check_known(answers, set(ids), self.name)
        references = {str(r["question_id"]): r["text"] for r in _jsonl(self.reference_path)}
        lacking = [q for q in ids if q not in references]
        if lacking:
            raise AnnotationError(f"{self.reference_path}: no reference answer to question {lacking[0]}")
        captions = {}
        for c in _jsonl(self.context_path):
            caption = c["caption"]
            captions[c["image"]] = "\n".join(caption) if isinstance(caption, list) else caption
        self.judge.require(self.name)
        done = self.reviews.load()
        tuples: dict[str, list[tuple[float, float]]] = defaultdict(list)
        unparsed = 0
        for q, qid in zip(questions, ids):
            if q["image"] not in captions:
                raise AnnotationError(f"{self.context_path}: no context for image {q['image']!r}")
            answer = answers.get(qid, "")
            key = (qid, answer, self.judge.model)
            if key not in done:
                prompt = self.review_prompt(captions[q["image"]], q["text"], references[qid], answer, self.rule(q["category"]))
                reply = self.judge.chat([{"role": "system", "content": LLAVA_BENCH_SYSTEM},
                                         {"role": "user", "content": prompt}])
                done[key] = {"question_id": q["question_id"], "category": f"llava_bench_{q['category']}", "answer": answer,
                             "judge_model": self.judge.model, "reply_model": reply.model, "content": reply.content,
                             "tuple": list(parse_review_scores(reply.content))}
                self.reviews.append(done[key])
            reference_score, model_score = done[key]["tuple"]
            unparsed += (reference_score, model_score) == (-1, -1)
            if qid not in answers:
                model_score = 0.0
            tuples[q["category"]].append((reference_score, model_score))
            tuples["all"].append((reference_score, model_score))
        reference_mean, model_mean = (_mean([t[i] for t in tuples["all"]]) for i in (0, 1))
        return {"benchmark": self.name, "metric": "relative score (GPT-4 judged)", "n": len(ids),
                "missing": sum(q not in answers for q in ids), "score": _relative(tuples["all"]),
                **{f"relative_{c}": _relative(t) for c, t in sorted(tuples.items()) if c != "all"},
                "reference_score": 10 * reference_mean, "model_score": 10 * model_mean, "unparsed": unparsed}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _relative(pairs: list[tuple[float, float]]) -> float | None:
    """Model / reference mean score x 100 (None when the reference scores sum to 0)."""
    reference = sum(p[0] for p in pairs)
    return 100 * sum(p[1] for p in pairs) / reference if reference else None


# --------------------------------------------------------------------------------------------
# MM-Vet
# --------------------------------------------------------------------------------------------

# The grader prompt of MM-Vet's mm-vet_evaluator.py (few-shot correctness table), verbatim.
MM_VET_PROMPT = """Compare the ground truth and prediction from AI models, to give a correctness score for the prediction. <AND> in the ground truth means it is totally right only when all elements in the ground truth are present in the prediction, and <OR> means it is totally right when any one element in the ground truth is present in the prediction. The correctness score is 0.0 (totally wrong), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, or 1.0 (totally right). Just complete the last space of the correctness score.

Question | Ground truth | Prediction | Correctness
--- | --- | --- | ---
What is x in the equation? | -1 <AND> -5 | x = 3 | 0.0
What is x in the equation? | -1 <AND> -5 | x = -1 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 or 5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -1 or x = -5 | 1.0
Can you explain this meme? | This meme is poking fun at the fact that the names of the countries Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes, while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues because the names of these countries do not accurately represent their landscapes. | The meme talks about Iceland and Greenland. It's pointing out that despite their names, Iceland is not very icy and Greenland isn't very green. | 0.4
Can you explain this meme? | This meme is poking fun at the fact that the names of the countries Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes, while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues because the names of these countries do not accurately represent their landscapes. | The meme is using humor to point out the misleading nature of Iceland's and Greenland's names. Iceland, despite its name, has lush green landscapes while Greenland is mostly covered in ice and snow. The text 'This is why I have trust issues' is a playful way to suggest that these contradictions can lead to distrust or confusion. The humor in this meme is derived from the unexpected contrast between the names of the countries and their actual physical characteristics. | 1.0
"""
MM_VET_REASK = "\nPredict the correctness of the answer (digit): "


def parse_grade(content: str) -> float | None:
    """MM-Vet's reading of a grade: the reply's text before its first space, stripped, as a number in [0, 1];
    None otherwise (the evaluator then asks again). NaN is refused (the evaluator would take it)."""
    try:
        value = float(content.split(" ")[0].strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and 0.0 <= value <= 1.0 else None


class MMVetBenchmark:
    """MM-Vet (v1), the ``mm-vet.zip`` layout: ``mm-vet.json`` ({"v1_<k>": {imagename, question, answer,
    capability: [...]}}) and ``images/``.

    question_id = ``<k>`` (the key without ``v1_``, as LLaVA's ``llava-mm-vet.jsonl``); prompt: the question
    as written. Grading as MM-Vet's ``mm-vet_evaluator.py``: one user message, :data:`MM_VET_PROMPT` + a table
    row ``question | answer (" <AND> " / " <OR> " spaced) | prediction | ``; the reply parsed by
    :func:`parse_grade`; on a bad reply it asks again with :data:`MM_VET_REASK` appended, the temperature
    0.5 higher each time, and gives 0.0 after 5 unusable replies (the evaluator also sends a 6th request and
    ignores it; we do not send it). ``score`` = mean grade x 100 over all questions; details per
    capability (``score_rec``, ``score_ocr``, ...: mean over the questions that need it x 100).
    Official settings (conf/benchmark/mm_vet.yaml): judge ``gpt-4-0613``, temperature 0.0, 3 tokens, one run.
    A missing answer is graded 0 without asking the judge.
    """

    needs_judge = True

    def __init__(self, name: str, metadata: str, image_root: str, judge: ChatJudge | Mapping | None = None,
                 review_file: str | None = None, answering: Mapping | None = None) -> None:
        self.answering = dict(answering or {})  # generation settings the answering loop uses for this benchmark
        self.name, self.path, self.image_root = name, Path(metadata), Path(image_root)
        self.judge, self.reviews = as_judge(judge), _ReviewLog(review_file)

    def samples(self) -> list[tuple[str, dict]]:
        data = read_json(self.path)
        if not isinstance(data, dict):
            raise AnnotationError(f"{self.path}: expected {{id: sample}} (mm-vet.json layout)")
        samples = [(str(k).removeprefix("v1_"), v) for k, v in data.items()]
        ids = Counter(q for q, _ in samples)
        if len(ids) != len(samples):
            raise AnnotationError(f"{self.path}: ids clash once 'v1_' is dropped: {ids.most_common(1)[0][0]}")
        return samples

    def questions(self) -> list[dict]:
        return [{"question_id": int(q) if q.isdigit() else q, "image": field(s, "imagename", f"{self.path}: {q}"),
                 "text": field(s, "question", f"{self.path}: {q}"), "capability": list(s.get("capability", []))}
                for q, s in self.samples()]

    @staticmethod
    def grade_prompt(question: str, answer: str, prediction: str) -> str:
        row = " | ".join([question, answer.replace("<AND>", " <AND> ").replace("<OR>", " <OR> "), prediction, ""])
        return MM_VET_PROMPT + "\n" + row

    def grade(self, question: str, answer: str, prediction: str) -> tuple[float, list[str]]:
        """(grade, every reply) for one prediction."""
        prompt = self.grade_prompt(question, answer, prediction)
        contents = [self.judge.chat([{"role": "user", "content": prompt}]).content]
        value, temperature = parse_grade(contents[-1]), self.judge.temperature
        while value is None and len(contents) < 5:
            reply = self.judge.chat([{"role": "user", "content": prompt + MM_VET_REASK}], temperature=temperature)
            contents.append(reply.content)
            value, temperature = parse_grade(reply.content), temperature + 0.5
        return (0.0 if value is None else value), contents

    def score(self, answers: Mapping[str, str]) -> dict:
        samples = self.samples()
        _check_known(answers, {q for q, _ in samples}, self.name)
        self.judge.require(self.name)
        done = self.reviews.load()
        grades: dict[str, float] = {}
        for qid, s in samples:
            if qid not in answers:
                grades[qid] = 0.0
                continue
            key = (qid, answers[qid], self.judge.model)
            if key not in done:
                where = f"{self.path}: {qid}"
                value, contents = self.grade(field(s, "question", where), field(s, "answer", where), answers[qid])
                done[key] = {"question_id": qid, "answer": answers[qid], "judge_model": self.judge.model,
                             "contents": contents, "score": value}
                self.reviews.append(done[key])
            grades[qid] = float(done[key]["score"])
        by_capability: dict[str, list[float]] = defaultdict(list)
        for qid, s in samples:
            for capability in set(s.get("capability", [])):
                by_capability[capability].append(grades[qid])
        total = _mean(list(grades.values()))
        return {"benchmark": self.name, "metric": "MM-Vet score (GPT-4 graded)", "n": len(samples),
                "missing": sum(q not in answers for q, _ in samples), "score": 100 * total,
                **{f"score_{c}": 100 * _mean(v) for c, v in sorted(by_capability.items())}}
