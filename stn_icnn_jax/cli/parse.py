"""``stn-icnn parse PHOTO_OR_DIR ... --out DIR``: label maps of photos (arguments and errors only;
the work is in :mod:`stn_icnn_jax.photo`)."""

from __future__ import annotations

import argparse
import sys

from stn_icnn_jax.errors import UserError


def add_parse_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "parse",
        help="label the faces in photos (label PNGs, overlays, legend)",
        description=(
            "Parse photos (files or folders of .jpg/.png/...): finds each face, frames it "
            "like the training faces and writes NAME.labels.png (palette PNG of the photo's "
            "size, pixel value = class id), NAME.overlay.png and legend.json to --out."
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="PHOTO_OR_DIR")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--weights", metavar="FILE",
                        help="a weights file (.stnw); default: the bundled default weights")
    parser.add_argument("--overlay", action=argparse.BooleanOptionalAction, default=True,
                        help="also write NAME.overlay.png (default: yes)")
    parser.add_argument("--no-face-fallback", dest="face_fallback", action="store_false",
                        help="a photo without a detected face stays all background "
                             "(default: parse the whole image)")
    parser.add_argument("--batch_size", type=int, default=4, help="faces per compiled call")
    parser.add_argument("--max_side", type=int, default=None,
                        help="largest canvas side: bigger frames and photos are shrunk to fit "
                             "(faster, coarser; default 1024)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_cmd_parse)
    return parser


def _cmd_parse(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from stn_icnn_jax.photo import api, outputs

    paths = outputs.collect_photos(args.inputs)
    if not paths:
        raise UserError("no photos found in " + ", ".join(args.inputs))
    # a missing or damaged weights file: cli.main prints the error as one line, exit 1
    parser = api.get_parser(args.weights, args.batch_size, args.max_side)
    print(f"parsing {len(paths)} photo(s); the first one compiles the model "
          "(up to a minute on a CPU)", file=sys.stderr)
    failures = outputs.parse_files(
        paths, args.out, parser, with_overlay=args.overlay, face_fallback=args.face_fallback,
        batch_size=args.batch_size, report=lambda m: tqdm.write(m, file=sys.stderr),
        progress=not args.no_progress,
    )
    done = len(paths) - len(failures)
    print(f"wrote {done} label map(s) to {args.out}"
          + (f"; {len(failures)} photo(s) failed" if failures else ""), file=sys.stderr)
    return 1 if failures else 0
