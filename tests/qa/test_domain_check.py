"""The nano QA model's out-of-domain check: sim scenes pass, real clips and photo-like images are flagged, and the
node and `ask` say so once (policies.qa.domain)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from agentrt.cli.__main__ import main
from agentrt.errors import ConfigError
from agentrt.messages import Answer, Query
from agentrt.testing import MockNode, fake_frame
from policies.qa.domain import FEATURES, DomainCheck, DomainStats, domain_file, frame_features
from policies.qa.domain_bench import CLIPS, clip_frames, sim_frames, videos_folder
from policies.qa.node import UNRELIABLE, VideoQANode, checked_answer
from policies.qa.videoqa import NANO_QA_WEIGHTS, domain_note

SEED = 3_200_000  # neither training (0-9999), evaluation (1000000+), calibration (3000000+) nor the table's (3100000+)


@pytest.fixture(scope="module")
def stats() -> DomainStats:
    return DomainStats.load(domain_file(NANO_QA_WEIGHTS))


@pytest.fixture(scope="module")
def sims() -> list[np.ndarray]:
    return sim_frames(SEED, 8, 96) + sim_frames(SEED + 8, 8, 64)


def _photo_like(seed: int, height: int = 240, width: int = 320) -> list[np.ndarray]:
    """Images a camera could give and a sim never renders: 1/f ("natural") noise in colour, a sky-to-ground
    gradient with sensor noise, plain uniform noise."""
    rng = np.random.default_rng(seed)
    fy, fx = np.meshgrid(np.fft.fftfreq(height), np.fft.fftfreq(width), indexing="ij")
    spectrum = 1 / np.maximum(np.hypot(fy, fx), 1 / max(height, width))
    natural = np.stack([np.real(np.fft.ifft2(spectrum * np.exp(2j * np.pi * rng.random((height, width)))))
                        for _ in range(3)], axis=2)
    natural = (natural - natural.min()) / np.ptp(natural) * 255
    ramp = np.linspace(0, 1, height)[:, None, None]
    gradient = (ramp * np.array([70, 110, 40]) + (1 - ramp) * np.array([150, 190, 235])) + rng.normal(0, 6, (height, width, 3))
    uniform = rng.random((height, width, 3)) * 255
    return [np.clip(x, 0, 255).astype(np.uint8) for x in (natural, gradient, uniform)]


def test_held_out_sim_scenes_are_in_domain(stats: DomainStats, sims: list[np.ndarray]) -> None:
    distances = stats.distances(np.stack([frame_features(f) for f in sims]))
    assert distances.max() < stats.threshold, (distances.max(), stats.threshold)
    check = DomainCheck(stats)
    assert not any(check.update(f) for f in sims) and not check.out_of_domain


def test_photo_like_images_are_out_of_domain(stats: DomainStats) -> None:
    images = _photo_like(0)
    assert (stats.distances(np.stack([frame_features(f) for f in images])) > stats.threshold).all()


@pytest.mark.parametrize("clip", CLIPS)
def test_frames_of_real_clips_are_out_of_domain(clip: str, stats: DomainStats) -> None:
    path = videos_folder() / clip
    if not path.exists():
        pytest.skip(f"{path} is absent (the four CC BY 4.0 clips live in ../shared/data/videos)")
    frames = clip_frames(path, 6)
    assert len(frames) == 6
    assert (stats.distances(np.stack([frame_features(f) for f in frames])) > stats.threshold).all()


def test_the_stream_warns_once_and_one_odd_frame_does_not(stats: DomainStats, sims: list[np.ndarray]) -> None:
    check, odd = DomainCheck(stats), _photo_like(1)
    assert [check.update(f) for f in [*sims[:4], odd[0], *sims[4:8]]] == [""] * 9  # one photo among sims
    said = [check.update(f) for f in [*odd, *_photo_like(2), *odd]]
    assert len([s for s in said if s]) == 1 and check.out_of_domain
    assert said[2].startswith("the nano QA model only knows the simulated scenes; this stream looks like a real")
    assert "--model hf:PATH" in said[2] and "\n" not in said[2]
    check.reset()
    assert not check.out_of_domain and check.update(odd[0]) == ""


def test_statistics_refit_round_trip_and_a_bad_file_is_one_line(tmp_path: Path, sims: list[np.ndarray]) -> None:
    stats = DomainStats.fit(np.stack([frame_features(f) for f in sims * 3]) + np.random.default_rng(0).normal(
        0, 1e-3, (len(sims) * 3, len(FEATURES))))
    stats.save(tmp_path / "d.json")
    again = DomainStats.load(tmp_path / "d.json")
    assert again.threshold == pytest.approx(stats.threshold) and again.calibration["frames"] == len(sims) * 3
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="agentrt qa-domain calibrate") as raised:
        DomainStats.load(tmp_path / "bad.json")
    assert "\n" not in str(raised.value)


def test_the_nano_model_flags_a_photo_stream_and_its_answers(sims: list[np.ndarray]) -> None:
    from policies.qa.runtime import load_nano_qa

    qa = load_nano_qa("", "cpu")
    for i, frame in enumerate(sims[:6]):
        qa.ingest(frame, i * 10**9)
    assert domain_note(qa) == "" and not "".join(checked_answer(qa, "what colour is the cube?")).startswith("(")
    for i, frame in enumerate(_photo_like(3) * 2):
        qa.ingest(frame, (10 + i) * 10**9)
    assert "only knows the simulated scenes" in domain_note(qa)
    answer = list(checked_answer(qa, "what colour is the cube?"))
    assert answer[0] == UNRELIABLE and len(answer) > 1  # the flag, then the model's answer
    qa.reset()
    assert domain_note(qa) == ""


def test_the_node_warns_once_and_flags_its_answers(caplog: pytest.LogCaptureFixture) -> None:
    harness = MockNode(VideoQANode, params={"model": "nano", "max_new_tokens": 4})
    inputs = [("frames", fake_frame(i, height=120, width=160)) for i in range(8)]
    inputs += [("queries", Query("q1", 0, 0, "what colour is the cube?")), ("frames", fake_frame(9)),
               ("queries", Query("q2", 1, 0, "how many objects are there?"))]
    with caplog.at_level(logging.WARNING):
        out = harness.run(inputs=inputs)
    answers = [m for _, m in out if isinstance(m, Answer)]
    for qid in ("q1", "q2"):
        assert [a.text for a in answers if a.query_id == qid][0] == UNRELIABLE
    assert len([r for r in caplog.records if "only knows the simulated scenes" in r.getMessage()]) == 1
    assert harness.node.stats.counters["out_of_domain"] == 1


def test_ask_says_it_once_on_a_stream_unlike_the_sims(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["ask", "how many objects are there?", "--source", "synthetic:160x120@30", "--frames", "6",
                 "--ingest-hz", "0", "--seconds", "5"])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.err.count("only knows the simulated scenes") == 1, captured.err
    assert captured.out.startswith(UNRELIABLE)
