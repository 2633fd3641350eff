"""Parser of `doctor`."""

from __future__ import annotations

from typing import Any


def add_parsers(sub: Any) -> None:
    """`doctor`."""
    doctor = sub.add_parser("doctor", help="can FID/KID/IS run here? (the Inception weights), and the fix if not",
                            description="Checks what sample-quality metrics need on this machine without "
                            "importing torch: torch-fidelity installed, the Inception weights file (the "
                            "settings' or torch hub's cache) present, its size and sha256; then loads it "
                            "weights-only in a child process. Exit 0 when FID/KID/IS can run, 1 when not.")
    doctor.add_argument("--no-load", action="store_true",
                        help="skip the child process that loads the weights (size and hash only)")
    doctor.add_argument("--json", action="store_true", help="as one JSON object")
