"""``python -m agentledger.pipeline.tlog verify-proof FILE --key VKEY``: the proof check of
``agentledger verify-proof`` without the command line's dependencies (Typer, Rich, pyarrow), for
an auditor who installs only ``agentledger`` and ``cryptography``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agentledger.pipeline.tlog.keys import read_keyring
from agentledger.pipeline.tlog.note import Verifier
from agentledger.pipeline.tlog.proof import verify_inclusion_proof


def main(argv: list[str] | None = None) -> int:
    """Exit 0 and print the summary when the proof holds; 1 and the reason when it does not;
    2 when the keys given are unusable."""
    parser = argparse.ArgumentParser(prog="python -m agentledger.pipeline.tlog")
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify-proof", help="check an inclusion proof file")
    verify.add_argument("file", help="proof file (JSON)")
    verify.add_argument("--key", action="append", default=[], help="verifier key (repeatable)")
    verify.add_argument("--keyring", help="file of verifier keys, one per line")
    args = parser.parse_args(argv)
    try:
        keys = [Verifier.parse(k) for k in args.key]
        if args.keyring and not Path(args.keyring).is_file():
            raise ValueError(f"no keyring file {args.keyring}")
        keys += read_keyring(args.keyring) if args.keyring else []
    except ValueError as exc:
        print(f"error: verifier key: {exc}", file=sys.stderr)
        return 2
    if not keys:
        print("error: give the log's public key with --key", file=sys.stderr)
        return 2
    try:
        text = Path(args.file).read_text(encoding="utf-8")
        print(verify_inclusion_proof(text, keys).summary())
    except (OSError, ValueError) as exc:
        print(f"error: proof rejected: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
