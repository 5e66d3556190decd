"""Every kind of awkward input image either converts to RGB or becomes an error row."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from conftest import compose_config
from genixer.data.images import ImageTooLarge, load_rgb
from genixer.pipelines import generate


def save(image: Image.Image, path, **kw):
    image.save(path, **kw)
    return path


@pytest.fixture
def inputs(tmp_path):
    base = Image.new("RGB", (60, 40), (200, 30, 30))
    jpeg = io.BytesIO()
    base.save(jpeg, "JPEG")
    files = {
        "gray": save(base.convert("L"), tmp_path / "gray.png"),
        "rgba": save(Image.new("RGBA", (60, 40), (0, 0, 255, 0)), tmp_path / "rgba.png"),
        "cmyk": save(base.convert("CMYK"), tmp_path / "cmyk.jpg"),
        "gray16": save(Image.fromarray(np.full((40, 60), 40000, dtype=np.uint16)), tmp_path / "gray16.png"),
        "palette": save(base.convert("P"), tmp_path / "palette.png"),
        "huge_jpeg": save(Image.new("RGB", (3000, 2000), (10, 200, 10)), tmp_path / "huge.jpg"),
        "huge_png": save(Image.new("RGB", (3000, 2000), (10, 200, 10)), tmp_path / "huge.png"),
    }
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (tmp_path / "notes.jpg").write_text("not an image at all")
    return tmp_path, files


def test_conversions(inputs):
    _, files = inputs
    for name in ("gray", "rgba", "cmyk", "gray16", "palette"):
        image = load_rgb(files[name])
        assert image.mode == "RGB" and image.size == (60, 40), name
    assert load_rgb(files["rgba"]).getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    assert load_rgb(files["gray16"]).getpixel((0, 0)) == (156, 156, 156)  # 40000 >> 8
    assert max(load_rgb(files["huge_jpeg"], max_pixels=1_000_000).size) <= 1500  # decoded at reduced scale
    with pytest.raises(ImageTooLarge):
        load_rgb(files["huge_png"], max_pixels=1_000_000)


def test_generation_turns_bad_inputs_into_error_rows(inputs, tmp_path_factory):
    root, files = inputs
    names = ["gray.png", "rgba.png", "cmyk.jpg", "gray16.png", "palette.png", "huge.jpg", "huge.png",
             "empty.png", "truncated.jpg", "notes.jpg"]
    queries = root / "q.jsonl"
    queries.write_text("".join(json.dumps({"id": n, "image": n}) + "\n" for n in names))
    out = tmp_path_factory.mktemp("gen")
    generate.run(compose_config("generate", [
        f"paths.output_dir={out}", f"queries={queries}", f"image_root={root}", "max_pixels=1000000",
        "generation.max_new_tokens=4", "batch_size=4"]))
    rows = {json.loads(line)["image_id"]: json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()}
    errors = {k: r["reason"] for k, r in rows.items() if r["status"] == "error"}
    assert set(errors) == {"huge.png", "empty.png", "truncated.jpg", "notes.jpg"}
    assert "ImageTooLarge" in errors["huge.png"] and "UnidentifiedImageError" in errors["notes.jpg"]
    assert "truncated" in errors["truncated.jpg"] or "OSError" in errors["truncated.jpg"]
    assert (rows["huge.jpg"]["width"], rows["huge.jpg"]["height"]) == (3000, 2000)  # decoded smaller, recorded as is
