"""V2S arithmetic without TensorFlow: segment replication and label mappings, by hand."""
import numpy as np
import pytest

from xferlab.errors import UserError
from xferlab.v2s.mapping import (build_mapping, frequency_mapping, map_scores, mapping_matrix,
                                 random_mapping, resolve_mapping)
from xferlab.v2s.segments import replicate_segments, segment_mask, segment_starts


@pytest.mark.parametrize("seg, starts", [(1, [0]), (2, [0, 5000]), (3, [0, 5000, 10000])])
def test_segment_starts_l5000(seg, starts):
    # K = 16000 // 5000 = 3 slots, s = K // seg, copy i at (i * s) * L
    assert segment_starts(5000, seg) == starts


def test_segment_starts_spacing_and_errors():
    assert segment_starts(3000, 2) == [0, 6000]  # K = 5, s = 2
    assert segment_starts(1000, 4) == [0, 4000, 8000, 12000]  # K = 16, s = 4
    with pytest.raises(UserError, match="seg <= 3"):
        segment_starts(5000, 4)
    with pytest.raises(UserError, match="does not fit"):
        segment_starts(16001, 1)
    with pytest.raises(UserError, match="seg"):
        segment_starts(100, 0)


def test_replicate_segments_and_mask():
    x = np.arange(1, 5001, dtype=np.float32)[None]  # (1, 5000)
    out = replicate_segments(x, 2)
    assert out.shape == (1, 16000)
    np.testing.assert_array_equal(out[0, :5000], x[0])
    np.testing.assert_array_equal(out[0, 5000:10000], x[0])
    assert not out[0, 10000:].any()
    mask = segment_mask(5000, 2)
    assert mask[:10000].sum() == 0 and mask[10000:].all()


def test_resolve_mapping():
    assert resolve_mapping("max", 36, 5) == 7
    assert resolve_mapping(3, 10, 3) == 3
    with pytest.raises(UserError, match="model.mapping <= 3"):
        resolve_mapping(4, 10, 3)  # 4 x 3 = 12 > 10 source classes
    with pytest.raises(UserError):
        resolve_mapping(0, 10, 3)
    with pytest.raises(UserError):
        resolve_mapping("many", 10, 3)
    for mapping in (5, "max"):  # PigCVP: 52 classes on a 37-label AM, whatever the mapping
        with pytest.raises(UserError, match="the target task has 52 classes but the AM only 37 labels"):
            resolve_mapping(mapping, 37, 52)


def test_random_mapping_seeded_and_ordered():
    a = random_mapping(10, 3, 3, seed=7)
    assert a == random_mapping(10, 3, 3, seed=7)  # reproducible
    perm = np.random.default_rng(7).permutation(10)
    assert a == [sorted(perm[0:3]), sorted(perm[3:6]), sorted(perm[6:9])]
    flat = [s for lst in a for s in lst]
    assert len(set(flat)) == 9  # no source class reused
    # seed=None: the authors' ordered assignment, class j owns j*m .. j*m+m-1
    assert random_mapping(10, 3, 3, seed=None) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert build_mapping("one_to_one", 5, 10, 3, None) == [[0], [1], [2]]  # mapping ignored
    assert len(build_mapping("random", "max", 10, 3, 1)[0]) == 3
    with pytest.raises(UserError, match="mapping_kind"):
        build_mapping("nearest", 1, 10, 3, 0)


def test_frequency_mapping_hand_worked():
    # target 0 -> AM predicts source 1,1,1,2,2,3 ; target 1 -> 1,1,1,1,4,0
    y = np.array([0] * 6 + [1] * 6)
    pred = np.array([1, 1, 1, 2, 2, 3, 1, 1, 1, 1, 4, 0])
    # counts C0 = [0,3,2,1,0], C1 = [1,4,0,0,1]; greedy: (1,s1)=4, (0,s1) taken, (0,s2)=2,
    # (0,s3)=1 fills target 0, then (1,s0)=1 (tie with (1,s4), lower s first)
    assert frequency_mapping(pred, y, 5, 2, 2) == [[2, 3], [0, 1]]
    assert frequency_mapping(pred, y, 5, 2, 1) == [[2], [1]]
    with pytest.raises(UserError, match="needs the target training data"):
        build_mapping("frequency", 1, 5, 2, 0)


def test_mapping_matrix_and_scores():
    lists = [[0, 2], [1, 3]]
    mat = mapping_matrix(lists, 5)
    assert mat.shape == (5, 2)
    np.testing.assert_array_equal(mat[:, 0], [1, 0, 1, 0, 0])
    probs = np.array([[0.1, 0.2, 0.3, 0.4, 0.0]])
    np.testing.assert_allclose(map_scores(probs, lists), [[0.2, 0.3]])
