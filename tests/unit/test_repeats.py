"""Repeat detection: keyed phone hash, MinHash similarity, matching rules, masking."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.domain import repeats as rp
from shared.domain.repeats import CaseFingerprint, MatchReason, RepeatThresholds, find_repeat

SECRET = b"test-secret-not-for-production"
NOISE = "小区楼下的烧烤店每天晚上营业到凌晨两点，油烟和噪音严重影响居民休息，多次投诉无果。"
NOISE_REFORMATTED = "小区楼下的烧烤店 每天晚上营业到凌晨两点  油烟和噪音严重影响居民休息!多次投诉无果……\n"
WAGES = "公司拖欠了我三个月的工资，老板一直说没钱，现在人也联系不上了。"
ELEVATOR = "小区电梯困人已经半小时了，物业电话打不通"
NEIGHBOUR = "楼上邻居每天晚上很晚还在跺脚拖椅子，噪音影响休息，沟通了没用"
T0 = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)


# --- complainant key ---------------------------------------------------------------------------------


def test_key_is_hex_hmac_and_deterministic() -> None:
    key = rp.complainant_key("13812345678", SECRET)
    assert len(key) == 64 and all(c in "0123456789abcdef" for c in key)
    assert key == rp.complainant_key("13812345678", SECRET)
    assert key != rp.complainant_key("13812345678", b"another-secret")
    assert key != rp.complainant_key("13812345679", SECRET)


@pytest.mark.parametrize(
    "form", ["+86 138 1234 5678", "+8613812345678", "8613812345678", "0086-138-1234-5678", "138-1234-5678",
             "（138）1234 5678", "１３８１２３４５６７８"],
)
def test_key_ignores_formatting_and_country_code(form: str) -> None:
    assert rp.complainant_key(form, SECRET) == rp.complainant_key("13812345678", SECRET)


def test_landline_international_and_domestic_forms_agree() -> None:
    assert rp.normalise_phone("+86 513 8123 4567") == rp.normalise_phone("0513-8123 4567") == "051381234567"
    assert rp.normalise_phone("86123456") == "86123456"  # a local number that happens to start with 86


@pytest.mark.parametrize("phone", ["13812345678", "15900001111", "051381234567", "13000000000"])
def test_key_never_contains_the_phone_digits(phone: str) -> None:
    key = rp.complainant_key(phone, SECRET)
    assert phone not in key
    assert phone[-8:] not in key
    assert phone[3:11] not in key


def test_key_rejects_missing_input_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="secret"):
        rp.complainant_key("13812345678", b"")
    with pytest.raises(ValueError) as err:
        rp.complainant_key("n/a", SECRET)
    assert "n/a" not in str(err.value)


# --- MinHash -----------------------------------------------------------------------------------------


def test_normalise_text_folds_width_case_and_drops_punctuation() -> None:
    assert rp.normalise_text("ＡＢＣ，abc！ 12３\t物业。") == "abcabc123物业"


def test_reformatted_text_is_similar() -> None:
    a = rp.minhash_signature(NOISE)
    assert rp.similarity(a, rp.minhash_signature(NOISE_REFORMATTED)) >= 0.9
    assert rp.similarity(a, rp.minhash_signature(NOISE.replace("，", ",").replace("。", "."))) >= 0.9
    latin = rp.minhash_signature("Wage arrears at Building 3, please help!")
    shouted = rp.minhash_signature("ＷＡＧＥ ａｒｒｅａｒｓ at building３ please help")
    assert rp.similarity(latin, shouted) >= 0.9


def test_a_small_edit_stays_fairly_similar() -> None:
    edited = NOISE.replace("凌晨两点", "凌晨三点")
    assert rp.similarity(rp.minhash_signature(NOISE), rp.minhash_signature(edited)) >= 0.6


@pytest.mark.parametrize(
    ("a", "b"), [(NOISE, WAGES), (NOISE, ELEVATOR), (WAGES, ELEVATOR), (NOISE, NEIGHBOUR)]
)
def test_different_complaints_are_dissimilar(a: str, b: str) -> None:
    assert rp.similarity(rp.minhash_signature(a), rp.minhash_signature(b)) < 0.3


def test_signature_shape_and_storable_values() -> None:
    sig = rp.minhash_signature(NOISE, num_perm=128, shingle=2)
    assert len(sig) == 128
    assert all(isinstance(v, int) and 0 <= v < 2**63 for v in sig)  # fits a BSON int64
    assert len(rp.minhash_signature("短", num_perm=16)) == 16  # shorter than a shingle


def test_empty_text_is_similar_to_nothing() -> None:
    empty = rp.minhash_signature("，。！ ")
    assert rp.similarity(empty, rp.minhash_signature("")) == 0.0
    assert rp.similarity(empty, rp.minhash_signature(NOISE)) == 0.0


def test_similarity_needs_equal_lengths() -> None:
    with pytest.raises(ValueError, match="length"):
        rp.similarity(rp.minhash_signature(NOISE, 64), rp.minhash_signature(NOISE, 32))


def test_signature_is_deterministic_across_processes() -> None:
    code = (
        "from shared.domain.repeats import minhash_signature as m; "
        f"print(m({NOISE!r}))"
    )
    root = Path(__file__).resolve().parents[2]
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)}
        run = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(run.stdout.strip())
    assert outputs == {str(rp.minhash_signature(NOISE))}


def test_signature_is_pinned() -> None:
    # A changed algorithm would silently stop matching signatures already stored with open cases.
    assert rp.minhash_signature("物业不修电梯", num_perm=4) == [
        494573380442767613, 311418164496455407, 792982841601851255, 87332632325482479,
    ]


# --- find_repeat -------------------------------------------------------------------------------------


def fp(case_id: str, text: str, key: str | None, at: datetime) -> CaseFingerprint:
    return CaseFingerprint(case_id, key, rp.minhash_signature(text), at)


KEY_A = rp.complainant_key("13812345678", SECRET)
KEY_B = rp.complainant_key("13900000000", SECRET)


def test_same_text_from_anyone_is_a_repeat() -> None:
    cand = fp("new", NOISE_REFORMATTED, KEY_B, T0 + timedelta(days=3))
    match = find_repeat(cand, [fp("c1", NOISE, KEY_A, T0), fp("c2", WAGES, KEY_B, T0)])
    assert match is not None
    assert (match.case_id, match.reason) == ("c1", MatchReason.SIMILAR_TEXT)
    assert match.similarity >= 0.9


def test_same_complainant_needs_only_the_lower_threshold() -> None:
    edited = NOISE[:22] + "，已经好几个月了，希望尽快处理"
    sim = rp.similarity(rp.minhash_signature(NOISE), rp.minhash_signature(edited))
    thresholds = RepeatThresholds(same_complainant=0.3, any_complainant=0.9)
    assert 0.3 <= sim < 0.9
    open_case = fp("c1", NOISE, KEY_A, T0)
    later = T0 + timedelta(hours=5)
    same = find_repeat(fp("new", edited, KEY_A, later), [open_case], thresholds=thresholds)
    assert same is not None and same.reason is MatchReason.SAME_COMPLAINANT
    assert find_repeat(fp("new", edited, KEY_B, later), [open_case], thresholds=thresholds) is None
    assert find_repeat(fp("new", edited, None, later), [open_case], thresholds=thresholds) is None


def test_same_complainant_with_a_different_matter_is_not_a_repeat() -> None:
    assert find_repeat(fp("new", WAGES, KEY_A, T0), [fp("c1", NOISE, KEY_A, T0)]) is None


def test_anonymous_cases_do_not_match_each_other_by_key() -> None:
    assert find_repeat(fp("new", WAGES, None, T0), [fp("c1", NOISE, None, T0)]) is None


def test_window_excludes_old_cases() -> None:
    cand = fp("new", NOISE, KEY_A, T0 + timedelta(days=31))
    assert find_repeat(cand, [fp("old", NOISE, KEY_A, T0)], window=timedelta(days=30)) is None
    assert find_repeat(cand, [fp("old", NOISE, KEY_A, T0)], window=timedelta(days=31)) is not None


def test_best_match_is_the_most_similar_then_same_complainant_then_latest() -> None:
    cand = fp("new", NOISE, KEY_A, T0 + timedelta(days=2))
    cases = [
        fp("older", NOISE, KEY_B, T0),
        fp("newer", NOISE, KEY_B, T0 + timedelta(days=1)),
        fp("mine", NOISE, KEY_A, T0),
        fp("partial", NOISE[:30], KEY_A, T0 + timedelta(days=1)),
    ]
    match = find_repeat(cand, cases)
    assert match is not None and (match.case_id, match.reason) == ("mine", MatchReason.SAME_COMPLAINANT)
    match = find_repeat(cand, cases[:2])
    assert match is not None and match.case_id == "newer"


def test_candidate_does_not_match_itself_and_naive_times_are_utc() -> None:
    cand = fp("c1", NOISE, KEY_A, T0)
    assert find_repeat(cand, [cand]) is None
    naive = CaseFingerprint("c2", KEY_A, cand.signature, datetime(2026, 8, 30, 9, 0))
    assert find_repeat(cand, [naive], window=timedelta(days=2)) is not None
    assert find_repeat(cand, [naive], window=timedelta(days=1)) is None


def test_signature_of_other_settings_is_skipped() -> None:
    other = CaseFingerprint("c1", KEY_A, rp.minhash_signature(NOISE, num_perm=32), T0)
    assert find_repeat(fp("new", NOISE, KEY_A, T0), [other]) is None


def test_thresholds_are_validated() -> None:
    with pytest.raises(ValueError):
        RepeatThresholds(same_complainant=0.9, any_complainant=0.5)


# --- masking -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("13812345678", "138****5678"),
        ("+86 138-1234-5678", "138****5678"),
        ("0513-81234567", "051*****4567"),
        ("81234567", "******67"),
        ("110", "*10"),
        ("", ""),
    ],
)
def test_mask_phone(phone: str, masked: str) -> None:
    assert rp.mask_phone(phone) == masked


def test_mask_id_number() -> None:
    assert rp.mask_id_number("11010519491231002x") == "110***********002X"
    assert rp.mask_id_number("110105 19491231 0021") == "110***********0021"
    assert rp.mask_id_number("110105491231002") == "110********1002"  # old 15-digit IDs
    assert "19491231" not in rp.mask_id_number("11010519491231002X")
