"""`agentrt qa-domain`: calibrate and measure the nano QA model's out-of-domain check (``policies.qa.domain``).

    agentrt qa-domain calibrate   # sim scenes never trained on -> policies/weights/nano_qa_domain.json
    agentrt qa-domain measure     # flagged share: held-out sim scenes, task episodes, the four real clips

The work is in ``policies.qa.domain_bench``; docs/nano_qa.md has the figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=["calibrate", "measure"], help="calibrate the check, or measure it")
    parser.add_argument("--scenes", type=int, default=0, help="sim scenes per size (default 150 / 125)")
    parser.add_argument("--clip-frames", type=int, default=60, help="frames sampled per clip (default 60)")
    parser.add_argument("--videos", type=Path, default=None,
                        help="folder of the four clips (default: $AGENTRT_VIDEOS or ../shared/data/videos)")
    parser.add_argument("--stats", type=Path, default=None,
                        help="the statistics file (default: beside the shipped nano QA weights)")


def run(args: argparse.Namespace) -> int:
    from policies.qa.domain import DomainStats, domain_file
    from policies.qa.domain_bench import calibrate, measure, videos_folder
    from policies.qa.videoqa import NANO_QA_WEIGHTS

    stats_path = args.stats or domain_file(NANO_QA_WEIGHTS)
    if args.what == "calibrate":
        stats = calibrate(args.scenes or 150, stats_path)
        print(f"wrote {stats_path}: threshold {stats.threshold:.2f} ({stats.calibration})")
        return 0
    stats = DomainStats.load(stats_path)
    print(f"threshold {stats.threshold:.2f} (Mahalanobis distance; {stats.calibration.get('frames')} calibration "
          f"frames, largest {stats.calibration.get('distance_max')})")
    print("\n".join(measure(args.scenes or 125, args.clip_frames, stats, args.videos or videos_folder())))
    return 0
