"""Visual Genome region descriptions (+ image_data.json for sizes) -> rec / reg records."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from genixer.data.sources.boxes import Skipped, as_boxes, as_size, clamp_boxes
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
            regions = field(entry, "regions", f"{self.regions}: [{i}]")
            where = [f"{self.regions}: [{i}].regions[{j}]" for j in range(len(regions))]
            records += self._records(list(zip(where, regions)), images)
        return records

    def _records(self, regions: list[tuple[str, dict]], images: dict[int, dict]) -> list[dict]:
        """Records of one entry's regions, boxes converted and clamped in a batch per image
        (a torchvision call costs ~25 us, and the release has ~5M regions)."""
        ids, xywh, phrases = [], [], []
        for where, region in regions:
            image_id = field(region, "image_id", where)
            if image_id not in images:
                raise AnnotationError(f"{where}: field 'image_id' {image_id!r} is not in {self.image_data}")
            ids.append(image_id)
            xywh.append([field(region, k, where) for k in ("x", "y", "width", "height")])
            phrases.append(str(field(region, "phrase", where)).strip())
        boxes = as_boxes(xywh, [where for where, _ in regions], "x/y/width/height", xywh=True)
        clamped: list[list[float] | None] = [None] * len(boxes)
        for image_id in dict.fromkeys(ids):  # an entry's regions are all of one image in the release
            at = [k for k, other in enumerate(ids) if other == image_id]
            img = images[image_id]
            for k, box in zip(at, clamp_boxes([boxes[k] for k in at], img["width"], img["height"])):
                clamped[k] = box
        records = []
        for (where, region), image_id, box, phrase in zip(regions, ids, clamped, phrases):
            if box is None or not phrase:
                self.skipped["degenerate box" if box is None else "empty phrase"] += 1
                continue
            img = images[image_id]
            image = image_path(self.image_root, self.image_pattern, where, image_id=image_id, url_dir=img["url_dir"])
            records.append({
                "image": str(image), "width": img["width"], "height": img["height"],
                "image_id": image_id, "region_id": region.get("region_id"),
                "expression": phrase, "bbox": box,
            })
        return records
