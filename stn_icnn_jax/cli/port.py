"""``stn-icnn port-weights``: the authors' PyTorch checkpoint <-> our weights file."""

from __future__ import annotations

import argparse

from stn_icnn_jax.cli.main import config_errors_are_usage_errors
from stn_icnn_jax.errors import UsageError, UserError


def add_port_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "port-weights",
        help="port the authors' PyTorch checkpoint to a weights file (or back with --to-torch)",
        description=(
            "Convert the authors' STN-iCNN checkpoint container (a .pth dict with model1, "
            "model2, select_net; loaded with torch.load(weights_only=True)) to a weights "
            "file with the authors' conventions, or with --to-torch a weights file to a "
            ".pth their code loads. Needs torch: pip install 'stn-icnn-jax[torch]'."
        ),
    )
    parser.add_argument("--from", dest="source", required=True, metavar="CHECKPOINT",
                        help="the authors' .pth container (or, with --to-torch, a weights file)")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="the weights file to write (or, with --to-torch, the .pth)")
    parser.add_argument("--to-torch", action="store_true",
                        help="export a weights file to the authors' container format")
    parser.add_argument("--config", metavar="FILE",
                        help="run config the ported weights belong to (default: the authors' "
                             "HELEN conventions); --config.a.b=value overrides apply to it")
    parser.add_argument("--allow-partial", action="store_true",
                        help="port a container that lacks networks; they are freshly "
                             "initialised and the weights file's record says so")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the fresh initialisation with --allow-partial")
    parser.set_defaults(func=_cmd_port, accepts_overrides=True)
    return parser


def _cmd_port(args: argparse.Namespace) -> int:
    """Errors go to ``cli.main``: a wrong combination of arguments is a usage error, a
    file that cannot be ported (missing, not the authors' container, partial without
    ``--allow-partial``) or a missing torch a failure, each one line."""
    try:
        return _port(args)
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        raise UserError("stn-icnn port-weights needs torch: pip install "
                        "'stn-icnn-jax[torch]'") from exc


def _port(args: argparse.Namespace) -> int:
    from stn_icnn_jax import port
    from stn_icnn_jax.config import build

    if args.to_torch:
        if args.config or args.overrides or args.allow_partial:
            raise UsageError("--to-torch takes the config from the weights file; "
                             "--config, overrides and --allow-partial do not apply")
        path = port.export_weights(args.source, args.out)
        print(f"wrote {path} (the authors' container: model1, model2, select_net)")
        return 0
    config = None
    with config_errors_are_usage_errors():
        if args.config:
            config = build.load_config(args.config, args.overrides)
        elif args.overrides:
            config = port.authors_config()
            for key, raw in build._pairs(args.overrides):
                build.apply_override(config, key, raw)
    path, record = port.port_checkpoint(args.source, args.out, config,
                                        allow_partial=args.allow_partial, seed=args.seed)
    print(f"wrote {path}: {port.describe(record)}")
    return 0
