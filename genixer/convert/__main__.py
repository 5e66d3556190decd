"""``python -m genixer.convert <layout> <source> <destination>``: original checkpoints -> our HF-format dirs."""
from __future__ import annotations

import argparse
import sys

from genixer.convert.weights import ConversionError

DTYPES = ("float16", "bfloat16", "float32")


def parser() -> argparse.ArgumentParser:
    from genixer.convert.llava import convert_llava, load_projector
    from genixer.convert.shikra import convert_shikra, convert_shikra_delta

    main = argparse.ArgumentParser(prog="python -m genixer.convert", description=__doc__)
    layouts = main.add_subparsers(dest="layout", required=True)

    def model(name: str, convert, help: str, conversation: str) -> argparse.ArgumentParser:
        sub = layouts.add_parser(name, help=help)
        sub.set_defaults(convert=convert)
        sub.add_argument("source", help="the original checkpoint dir")
        sub.add_argument("destination", help="a new dir for our HF-format checkpoint")
        sub.add_argument("--vision-tower", help="CLIP dir or hub id in the local HF cache (default: mm_vision_tower)")
        sub.add_argument("--dtype", choices=DTYPES, help="weights dtype (default: the source's)")
        sub.add_argument("--conversation", default=conversation, help="conf/conversation/<name> (default: %(default)s)")
        return sub

    model("llava", convert_llava, "original-layout LLaVA-1.5 (llava-v1.5-7b, Genixer_L) -> our Genixer_L dir", "vicuna_v1")
    model("shikra", convert_shikra, "original-layout Shikra (Shikra-7B, Genixer_S) -> our Genixer_S dir", "vicuna_v1_1")
    delta = model("shikra-delta", convert_shikra_delta, "shikra-7b-delta-v1 (source) + Vicuna-7B v1.1 (--base), "
                  "then as shikra", "vicuna_v1_1")
    delta.add_argument("--base", required=True, help="the Vicuna-7B v1.1 dir the delta applies to")
    projector = layouts.add_parser("llava-projector", help="a pretrain-stage mm_projector.bin into an existing Genixer_L dir")
    projector.set_defaults(convert=load_projector)
    projector.add_argument("source", help="mm_projector.bin (or .safetensors)")
    projector.add_argument("destination", help="our Genixer_L dir (or its training run dir), changed in place")
    return main


def main(argv: list[str] | None = None) -> None:
    args = vars(parser().parse_args(argv))
    layout, convert = args.pop("layout"), args.pop("convert")
    try:
        convert(**args)
    except (ConversionError, FileNotFoundError) as error:
        sys.exit(f"genixer.convert {layout}: {error}")
    print(f"wrote {args['destination']}")


if __name__ == "__main__":
    main()
