"""Visual Genome region descriptions (+ image_data.json for sizes) -> rec / reg records."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from genixer.data.sources.boxes import Skipped, as_box, as_size, clamp_box
from genixer.data.sources.files import AnnotationError, field, image_path, read_json


class VisualGenomeRegions:
    """One record per region: ``phrase`` as the expression, ``x, y, width, height`` as an xyxy box.

    Images resolve as ``image_root / image_pattern``; the pattern may use ``{image_id}`` and
    ``{url_dir}`` (the url's folder, ``VG_100K`` or ``VG_100K_2`` in the release). Boxes are
    clamped to the image; degenerate boxes and empty phrases are counted in ``skipped``.
    """

    def __init__(self, regions: str, image_data: str, image_root: str, image_pattern: str = "{image_id}.jpg") -> None:
        self.regions, self.image_data = Path(regions), Path(image_data)
        self.image_root, self.image_pattern = Path(image_root), image_pattern
        self.skipped = Skipped()

    def _images(self) -> dict[int, dict]:
        data = read_json(self.image_data)
        if not isinstance(data, list):
            raise AnnotationError(f"{self.image_data}: expected a JSON list of images")
        images = {}
        for i, img in enumerate(data):
            where = f"{self.image_data}: [{i}]"
            width, height = as_size(img, where)
            url = img.get("url") or ""
            images[field(img, "image_id", where)] = {
                "width": width, "height": height, "url_dir": Path(urlparse(url).path).parent.name}
        return images

    def load(self) -> list[dict]:
        images = self._images()
        data = read_json(self.regions)
        if not isinstance(data, list):
            raise AnnotationError(f"{self.regions}: expected a JSON list of images with regions")
        self.skipped = Skipped()
        records = []
        for i, entry in enumerate(data):
            for j, region in enumerate(field(entry, "regions", f"{self.regions}: [{i}]")):
                where = f"{self.regions}: [{i}].regions[{j}]"
                image_id = field(region, "image_id", where)
                if image_id not in images:
                    raise AnnotationError(f"{where}: field 'image_id' {image_id!r} is not in {self.image_data}")
                img = images[image_id]
                xywh = [field(region, k, where) for k in ("x", "y", "width", "height")]
                box = clamp_box(as_box(xywh, where, "x/y/width/height", xywh=True), img["width"], img["height"])
                phrase = str(field(region, "phrase", where)).strip()
                if box is None or not phrase:
                    self.skipped["degenerate box" if box is None else "empty phrase"] += 1
                    continue
                image = image_path(self.image_root, self.image_pattern, where,
                                   image_id=image_id, url_dir=img["url_dir"])
                records.append({
                    "image": str(image), "width": img["width"], "height": img["height"],
                    "image_id": image_id, "region_id": region.get("region_id"),
                    "expression": phrase, "bbox": box,
                })
        return records
