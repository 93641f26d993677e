"""The validation split of a corpus without splits of its own: a count or a fraction with a floor."""

from __future__ import annotations

import pytest

from data_pipeline.sources import (VALIDATION_FLOOR, VALIDATION_WARN_BELOW, Utterance, pick_validation,
                                   read_folder, validation_count, validation_warning)


def _ljspeech(root, n: int, repeat_first: int = 1):
    lines = [f"LJ{i:03d}|Sentence number {i}.|" for i in range(n)]
    lines += [f"LJ9{i:02d}|Sentence number 0.|" for i in range(repeat_first - 1)]  # the same sentence again
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")


def test_count_fraction_floor_and_none():
    assert validation_count(20, 0.02) == VALIDATION_FLOOR  # 2% of 20 is 0.4 clips: the floor applies
    assert validation_count(1000, 0.02) == 20
    assert validation_count(20, 4) == 4
    assert validation_count(20, 0) == 0
    assert validation_count(3, 50) == 2  # at least one clip is left for training
    with pytest.raises(ValueError, match="count"):
        validation_count(20, -1)


def test_ljspeech_split_by_count_is_deterministic(tmp_path):
    _ljspeech(tmp_path, 20)
    utts = read_folder(tmp_path, validation=4)
    val = [u.source_id for u in utts if u.split == "validation"]
    assert len(val) == 4 and len(utts) == 20
    assert val == [u.source_id for u in read_folder(tmp_path, validation=4) if u.split == "validation"]
    assert sum(u.split == "validation" for u in read_folder(tmp_path, validation=0.02)) == VALIDATION_FLOOR


def test_a_sentence_is_never_in_both_splits(tmp_path):
    _ljspeech(tmp_path, 12, repeat_first=3)  # "Sentence number 0." three times
    for count in range(1, 8):
        utts = read_folder(tmp_path, validation=count)
        train = {u.text for u in utts if u.split == "train"}
        val = {u.text for u in utts if u.split == "validation"}
        assert val and not train & val


def test_manifest_rows_that_name_their_split_keep_it(tmp_path):
    rows = ["path,text,split", "a.wav,First one.,validation", "b.wav,Second one.,train"]
    rows += [f"c{i}.wav,Other sentence {i}.," for i in range(10)]
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    utts = {u.source_id: u.split for u in read_folder(tmp_path, validation=3)}
    assert utts["a"] == "validation" and utts["b"] == "train"
    assert sum(s == "validation" for k, s in utts.items() if k.startswith("c")) == 3


def test_warning_when_the_split_is_too_small():
    utts = [Utterance(str(i), f"{i}.wav", f"text {i}", split="validation" if i < 2 else "train") for i in range(20)]
    message = validation_warning(utts)
    assert message is not None and "2 utterances of 20" in message and "--validation" in message
    big = [Utterance(str(i), f"{i}.wav", f"t {i}", split="validation") for i in range(VALIDATION_WARN_BELOW)]
    assert validation_warning(big) is None


def test_pick_validation_takes_lowest_hashes_first():
    keys = [f"sentence {i}" for i in range(50)]
    small, large = pick_validation(keys, 3), pick_validation(keys, 10)
    assert len(small) == 3 and small <= large  # growing the split only adds sentences
