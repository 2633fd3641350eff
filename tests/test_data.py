"""engine.compute.data: the synthetic set and its cache, npz / torchvision loaders, select_classes and conform,
augmentation, DeviceData.

Everything here runs on tiny arrays in a few seconds; the learnability acceptance check (the width-32
discriminator reaches 90% on the synthetic set in 3 epochs) is the one `slow` test at the end.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from engine.compute.data.augment import augment_batch
from engine.compute.data.device_data import DeviceData, to_unit_range
from engine.compute.data.sources import CIFAR10_FILES, MNIST_FILES, load_splits
from engine.compute.data.splits import DataError, Splits, conform, select_classes
from engine.compute.data.synthetic import (
    SYNTHETIC_CLASSES,
    SYNTHETIC_VERSION,
    load_synthetic,
    make_synthetic,
    synthetic_cache_dir,
)
from engine.control.class_names import CIFAR10_CLASSES
from tests.helpers import write_idx

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A private synthetic cache folder, through the environment variable the product reads."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("GANMGR_CACHE", str(folder))
    return folder


def small(n_train: int = 200, n_test: int = 50, seed: int = 0, channels: int = 3, size: int = 32) -> Splits:
    return make_synthetic(n_train=n_train, n_test=n_test, seed=seed, channels=channels, size=size)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------------------- synthetic

def test_synthetic_shapes_dtypes_labels_balance():
    s = small(200, 50)
    assert s.x_train.shape == (200, 3, 32, 32) and s.x_test.shape == (50, 3, 32, 32)
    assert s.x_train.dtype == np.uint8 and s.y_train.dtype == np.int64 and s.y_test.dtype == np.int64
    assert s.classes == SYNTHETIC_CLASSES and s.num_classes == 10 and len(set(s.classes)) == 10
    assert (s.channels, s.image_size, s.source) == (3, 32, "synthetic")
    assert np.bincount(s.y_train, minlength=10).tolist() == [20] * 10
    assert np.bincount(s.y_test, minlength=10).tolist() == [5] * 10
    assert s.y_train.min() >= 0 and s.y_train.max() <= 9
    # real images, not blank: every image has contrast and uses a good part of the range
    flat = s.x_train.reshape(200, -1).astype(np.int16)
    assert (flat.max(1) - flat.min(1)).min() > 60


def test_synthetic_deterministic_by_seed():
    a, b, c = small(seed=3), small(seed=3), small(seed=4)
    assert a.x_train.tobytes() == b.x_train.tobytes() and a.x_test.tobytes() == b.x_test.tobytes()
    assert np.array_equal(a.y_train, b.y_train) and np.array_equal(a.y_test, b.y_test)
    assert a.x_train.tobytes() != c.x_train.tobytes()
    assert a.x_test.tobytes() != c.x_test.tobytes()
    # train and test are drawn from independent streams: the test split does not depend on n_train
    assert small(n_train=100, seed=3).x_test.tobytes() == a.x_test.tobytes()
    assert not any(np.array_equal(a.x_test[i], a.x_train[j]) for i in range(5) for j in range(200))


def test_synthetic_class_is_not_the_colour():
    """Mean colours overlap across classes: a class must be told by its shape."""
    s = small(1000, 10)
    mean_rgb = s.x_train.reshape(1000, 3, -1).mean(2)
    per_class = np.stack([mean_rgb[s.y_train == k].mean(0) for k in range(10)])
    spread_between = per_class.std(0).mean()
    spread_within = np.mean([mean_rgb[s.y_train == k].std(0).mean() for k in range(10)])
    assert spread_between < 0.25 * spread_within


def test_synthetic_grey_28_variant():
    s = small(100, 20, channels=1, size=28)
    assert s.x_train.shape == (100, 1, 28, 28) and s.x_test.shape == (20, 1, 28, 28)
    assert (s.channels, s.image_size) == (1, 28)
    assert np.bincount(s.y_train, minlength=10).tolist() == [10] * 10
    assert small(100, 20, channels=1, size=28).x_train.tobytes() == s.x_train.tobytes()
    flat = s.x_train.reshape(100, -1).astype(np.int16)
    assert (flat.max(1) - flat.min(1)).min() > 60  # the luminance contrast survives the grey conversion


def test_synthetic_rejects_impossible_parameters():
    with pytest.raises(ValueError):
        make_synthetic(10, 10, channels=2)
    with pytest.raises(ValueError):
        make_synthetic(0, 10)


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GANMGR_CACHE", str(tmp_path / "c"))
    assert synthetic_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("GANMGR_CACHE")
    assert synthetic_cache_dir() == Path.home() / ".cache" / "ganmgr"


def test_cache_is_written_then_reused(cache, monkeypatch):
    first = load_synthetic(120, 30, seed=5)
    files = list(cache.glob("*.npz"))
    assert len(files) == 1 and not list(cache.glob("*.tmp"))
    assert SYNTHETIC_VERSION in files[0].name and "s5" in files[0].name
    mtime = files[0].stat().st_mtime_ns

    def no_generation(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr("engine.compute.data.synthetic.make_synthetic", no_generation)
    again = load_synthetic(120, 30, seed=5)
    assert files[0].stat().st_mtime_ns == mtime
    assert again.x_train.tobytes() == first.x_train.tobytes()
    assert np.array_equal(again.y_test, first.y_test)
    assert again.classes == SYNTHETIC_CLASSES
    # other parameters are another cache entry, never a wrong hit
    monkeypatch.undo()
    monkeypatch.setenv("GANMGR_CACHE", str(cache))
    other = load_synthetic(120, 30, seed=6)
    assert len(list(cache.glob("*.npz"))) == 2
    assert other.x_train.tobytes() != first.x_train.tobytes()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong-shape"])
def test_corrupt_cache_is_rebuilt(cache, damage):
    fresh = load_synthetic(100, 20, seed=1)
    path = next(cache.glob("*.npz"))
    if damage == "garbage":
        path.write_bytes(b"not an npz at all")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        np.savez(path, x_train=np.zeros((3, 3, 32, 32), np.uint8), y_train=np.zeros(3, np.int64),
                 x_test=np.zeros((3, 3, 32, 32), np.uint8), y_test=np.zeros(3, np.int64))
    rebuilt = load_synthetic(100, 20, seed=1)
    assert rebuilt.x_train.tobytes() == fresh.x_train.tobytes()
    with np.load(path) as z:  # and the file on disk is whole again
        assert z["x_train"].tobytes() == fresh.x_train.tobytes()


def test_load_splits_synthetic_uses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr("engine.compute.data.synthetic.SYNTHETIC_TRAIN", 60)
    monkeypatch.setattr("engine.compute.data.synthetic.SYNTHETIC_TEST", 20)
    s = load_splits("synthetic", cache_dir=tmp_path)
    assert s.x_train.shape == (60, 3, 32, 32) and s.source == "synthetic"
    assert len(list(tmp_path.glob("synthetic-*.npz"))) == 1


def test_synthetic_variants_have_their_shapes(tmp_path, monkeypatch):
    monkeypatch.setattr("engine.compute.data.synthetic.SYNTHETIC_TRAIN", 30)
    monkeypatch.setattr("engine.compute.data.synthetic.SYNTHETIC_TEST", 10)
    for name, shape in (("synthetic", (3, 32, 32)), ("synthetic28", (1, 28, 28)), ("synthetic64", (3, 64, 64))):
        s = load_splits(name, cache_dir=tmp_path)
        assert s.x_train.shape == (30, *shape) and s.source == name and s.num_classes == 10
    assert len(list(tmp_path.glob("synthetic-*.npz"))) == 3  # one cache file per shape


def test_unknown_spec_is_a_data_error():
    with pytest.raises(DataError, match="imagenet"):
        load_splits("imagenet")


# ----------------------------------------------------------------------------------------------- npz

def write_npz(path: Path, **overrides) -> Path:
    s = small(40, 20)
    arrays = {"x_train": s.x_train, "y_train": s.y_train.astype(np.uint8), "x_test": s.x_test,
              "y_test": s.y_test.astype(np.uint8)}
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_npz_roundtrip(tmp_path):
    path = write_npz(tmp_path / "d.npz")
    s = load_splits(f"npz:{path}")
    ref = small(40, 20)
    assert s.x_train.tobytes() == ref.x_train.tobytes() and s.y_train.dtype == np.int64
    assert np.array_equal(s.y_test, ref.y_test)
    assert s.num_classes == 10 and s.classes == tuple(str(i) for i in range(10)) and s.source == f"npz:{path}"


def test_npz_class_names_are_used(tmp_path):
    path = write_npz(tmp_path / "d.npz", classes=np.array(CIFAR10_CLASSES))
    assert load_splits(f"npz:{path}").classes == CIFAR10_CLASSES


def test_the_viewer_names_an_npz_s_classes_as_the_loader_does(tmp_path):
    from engine.control.class_names import dataset_class_names

    named = write_npz(tmp_path / "named.npz", classes=np.array(CIFAR10_CLASSES))
    plain = write_npz(tmp_path / "plain.npz")
    for path in (named, plain):
        assert dataset_class_names(f"npz:{path}") == load_splits(f"npz:{path}").classes
    assert dataset_class_names(f"npz:{tmp_path / 'gone.npz'}") is None


@pytest.mark.parametrize("name,shape,channels,classes", [
    ("cifar10-subset.npz", (5085, 3, 32, 32), 3, 10),
    ("mnist-subset.npz", (8000, 1, 28, 28), 1, 10),
])
def test_real_npz_slices(name, shape, channels, classes):
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared real-data slices live outside the project)")
    s = load_splits(f"npz:{path}")
    assert s.x_train.shape == shape and s.x_train.dtype == np.uint8
    assert s.y_train.dtype == np.int64 and s.num_classes == classes and s.channels == channels
    assert s.x_test.shape[1:] == shape[1:]
    assert set(np.unique(s.y_train).tolist()) == set(range(classes))


def test_npz_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist") as e:
        load_splits(f"npz:{tmp_path / 'nope.npz'}")
    assert "nope.npz" in str(e.value)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_npz_corrupt(tmp_path, damage):
    path = write_npz(tmp_path / "bad.npz")
    if damage == "garbage":
        path.write_bytes(b"\x00" * 100)
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match="unreadable") as e:
        load_splits(f"npz:{path}")
    assert str(path) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("overrides,message", [
    ({"x_train": np.zeros((40, 3, 32, 32), np.float32)}, "float32, expected uint8"),
    ({"x_test": np.zeros((20, 32, 32), np.uint8)}, "x_test has shape"),
    ({"x_train": np.zeros((40, 32, 32, 3), np.uint8)}, "C 1 or 3"),
    ({"y_test": None}, "lacks the arrays y_test"),
    ({"y_train": np.zeros(39, np.uint8)}, "y_train has shape"),
    ({"y_train": np.full(40, -1, np.int64)}, "labels span -1"),
    ({"y_train": np.arange(40) % 10, "y_test": np.full(20, 12)}, "outside the class range 0..9"),
    ({"classes": np.array(["a", "b"])}, "outside the class range 0..1"),
    ({"y_train": np.zeros(40, np.float32)}, "expected integer class ids"),
    ({"x_test": np.zeros((20, 3, 28, 28), np.uint8)}, "differ"),
])
def test_npz_bad_arrays_name_the_file(tmp_path, overrides, message):
    path = write_npz(tmp_path / "bad.npz", **overrides)
    with pytest.raises(DataError) as e:
        load_splits(f"npz:{path}")
    assert message in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


# ----------------------------------------------------------------------------------------------- torchvision

def test_torchvision_sources_need_a_root(tmp_path):
    with pytest.raises(DataError, match="needs a data root"):
        load_splits("cifar10", None)
    with pytest.raises(DataError, match="does not exist") as e:
        load_splits("mnist", str(tmp_path / "absent"))
    assert "absent" in str(e.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        load_splits("cifar10", str(tmp_path / "file"))


def test_cifar10_empty_root_names_the_expected_files(tmp_path):
    with pytest.raises(DataError) as e:
        load_splits("cifar10", str(tmp_path))
    msg = str(e.value)
    assert str(tmp_path) in msg and "data_batch_1" in msg and "test_batch" in msg and "batches.meta" in msg
    assert "cifar-10-batches-py" in msg


def test_cifar10_fake_files_fail_the_md5_check(tmp_path):
    """torchvision 0.29 md5-checks every CIFAR-10 file, so look-alike pickles are refused, by name."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in CIFAR10_FILES[:-1]:
        batch = {"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8), "labels": list(range(10))}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CIFAR10_CLASSES)}))
    with pytest.raises(DataError, match="md5") as e:
        load_splits("cifar10", str(tmp_path))
    assert "data_batch_1" in str(e.value) and str(folder) in str(e.value)


def fake_mnist(root: Path, compress: bool = False) -> tuple[np.ndarray, ...]:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    xtr, xte = rng.integers(0, 256, (30, 28, 28)), rng.integers(0, 256, (12, 28, 28))
    ytr, yte = np.arange(30) % 10, np.arange(12) % 10
    for name, arr in zip(MNIST_FILES, (xtr, ytr, xte, yte)):
        write_idx(raw / name, arr, compress)
    return xtr, ytr, xte, yte


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_raw_idx_files_load(tmp_path, compress):
    xtr, ytr, xte, yte = fake_mnist(tmp_path, compress)
    s = load_splits("mnist", str(tmp_path))
    assert s.x_train.shape == (30, 1, 28, 28) and s.x_test.shape == (12, 1, 28, 28)
    assert np.array_equal(s.x_train[:, 0], xtr) and np.array_equal(s.x_test[:, 0], xte)
    assert np.array_equal(s.y_train, ytr) and s.y_train.dtype == np.int64 and np.array_equal(s.y_test, yte)
    assert s.classes == tuple("0123456789") and s.source == "mnist"


def test_mnist_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError) as e:
        load_splits("mnist", str(tmp_path))
    assert "train-images-idx3-ubyte" in str(e.value) and str(tmp_path) in str(e.value)
    fake_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="unreadable") as e:
        load_splits("mnist", str(tmp_path))
    assert "MNIST" in str(e.value) and "\n" not in str(e.value)


def test_never_downloads_without_asking(tmp_path):
    for spec in ("cifar10", "mnist"):
        with pytest.raises(DataError):
            load_splits(spec, str(tmp_path))
    assert list(tmp_path.iterdir()) == []  # nothing fetched, no folders made


# ----------------------------------------------------------------------------------------------- conform

def test_conform_pads_28_to_32_with_black():
    s = small(20, 10, channels=1, size=28)
    c = conform(s, None, 32)
    assert c.x_train.shape == (20, 1, 32, 32) and c.x_test.shape == (10, 1, 32, 32)
    assert np.array_equal(c.x_train[:, :, 2:30, 2:30], s.x_train)
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert (c.x_train[:, :, border] == 0).all()
    assert np.array_equal(c.y_train, s.y_train) and c.classes == s.classes


def test_conform_channels():
    g = small(20, 10, channels=1, size=28)
    c3 = conform(g, 3, 32)
    assert c3.x_train.shape == (20, 3, 32, 32)
    assert (c3.x_train[:, 0] == c3.x_train[:, 1]).all() and (c3.x_train[:, 1] == c3.x_train[:, 2]).all()
    rgb = Splits(np.array([[[[255]], [[0]], [[0]]], [[[255]], [[255]], [[255]]]], np.uint8), np.array([0, 1]),
                 np.zeros((1, 3, 1, 1), np.uint8), np.array([0]), ("a", "b"), "t")
    grey = conform(rgb, 1, None)
    assert grey.x_train.shape == (2, 1, 1, 1) and grey.x_train[:, 0, 0, 0].tolist() == [76, 255]


def test_conform_resizes_other_sizes_and_keeps_what_is_asked():
    s = small(10, 10)
    assert conform(s, None, None) is s and conform(s, 3, 32) is s
    down = conform(s, None, 28)
    assert down.x_train.shape == (10, 3, 28, 28) and down.x_train.dtype == np.uint8
    up = conform(s, 1, 64)
    assert up.x_test.shape == (10, 1, 64, 64)
    # resizing keeps the picture: the upscaled image, averaged back down, is close to the original grey
    back = up.x_test.reshape(10, 1, 32, 2, 32, 2).mean((3, 5))
    assert np.abs(back - conform(s, 1, None).x_test).mean() < 6
    wide = Splits(np.zeros((2, 3, 20, 40), np.uint8), np.array([0, 1]), np.zeros((2, 3, 20, 40), np.uint8),
                  np.array([0, 1]), ("a", "b"), "t")
    assert conform(wide, None, 32).x_train.shape == (2, 3, 32, 32)


def test_select_classes_keeps_only_those_labels():
    s = make_synthetic(100, 40, channels=1, size=28)
    sub = select_classes(s, [8])
    assert set(sub.y_train.tolist()) == {8} and set(sub.y_test.tolist()) == {8}
    assert sub.x_train.shape[0] == 10 and sub.classes == s.classes  # labels keep their names and ids
    two = select_classes(s, [1, 7])
    assert set(two.y_train.tolist()) == {1, 7}
    assert select_classes(s, []) is s
    with pytest.raises(DataError, match="no training images of label 42"):
        select_classes(s, [42])


# ----------------------------------------------------------------------------------------------- augmentation

class OpCounter(TorchFunctionMode):
    """Counts torch calls; a per-image Python loop would make the count grow with the batch."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def marker_batch(b: int) -> torch.Tensor:
    """Grey images, black with one bright 4x4 square near the top-left corner."""
    x = torch.zeros(b, 1, 32, 32, dtype=torch.uint8)
    x[:, :, 6:10, 6:10] = 255
    return x


def centroids(y: torch.Tensor) -> torch.Tensor:
    w = (y - y.amin(dim=(1, 2, 3), keepdim=True)).squeeze(1)
    w = w / w.sum(dim=(1, 2), keepdim=True)
    r = torch.arange(32, dtype=torch.float32)
    return torch.stack([(w.sum(1) * r).sum(1), (w.sum(2) * r).sum(1)], 1)  # (x, y)


def test_to_unit_range():
    x = torch.tensor([0, 127, 255], dtype=torch.uint8)
    assert torch.allclose(to_unit_range(x), torch.tensor([-1.0, 127 / 127.5 - 1, 1.0]))
    assert to_unit_range(x).dtype == torch.float32


def test_augment_shape_range_dtype():
    x = torch.from_numpy(small(64, 10).x_train)
    y = augment_batch(x, gen(0))
    assert y.shape == x.shape and y.dtype == torch.float32
    assert y.min() >= -1.0 and y.max() <= 1.0 and torch.isfinite(y).all()
    g = augment_batch(torch.from_numpy(small(16, 10, channels=1, size=28).x_train), gen(0))
    assert g.shape == (16, 1, 28, 28) and g.min() >= -1 and g.max() <= 1


def test_augment_crops_per_sample_and_flips_half():
    y = augment_batch(marker_batch(512), gen(1))
    c = centroids(y)
    flipped = c[:, 0] > 16  # the marker sits left of centre; only a flip moves it right
    assert 0.4 < flipped.float().mean() < 0.6
    assert (c[:, 1] < 16).all()  # never a vertical flip
    # per-sample crops: marker positions spread out (one crop for the whole batch would give 2 values)
    unflipped = c[~flipped]
    assert torch.unique(unflipped.round(decimals=1), dim=0).shape[0] > 100
    assert unflipped[:, 0].std() > 0.5 and unflipped[:, 1].std() > 0.5
    # a crop keeps 70-100% of the area inside the image: the marker moves by at most a few pixels
    ref = centroids(to_unit_range(marker_batch(1)))[0]
    assert ((unflipped - ref).abs() < 6).all()


def test_augment_is_deterministic_given_the_generator():
    x = torch.from_numpy(small(32, 10).x_train)
    a, b, c = augment_batch(x, gen(7)), augment_batch(x, gen(7)), augment_batch(x, gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    g = gen(7)
    first, second = augment_batch(x, g), augment_batch(x, g)
    assert torch.equal(first, a) and not torch.equal(first, second)  # the generator's state advances


def test_augment_keeps_image_statistics():
    x = torch.from_numpy(small(256, 10).x_train)
    ref, y = to_unit_range(x), augment_batch(x, gen(2))
    assert abs(y.mean().item() - ref.mean().item()) < 0.03
    assert abs(y.std().item() / ref.std().item() - 1.0) < 0.08
    per_channel = (y.mean(dim=(0, 2, 3)) - ref.mean(dim=(0, 2, 3))).abs()
    assert (per_channel < 0.05).all()
    # the colour jitter is small: a per-image correlation with the source stays high on average
    assert F.cosine_similarity(y.flatten(1) - y.mean(), ref.flatten(1) - ref.mean()).mean() > 0.5


def test_augment_jitters_colour_mildly():
    """Without geometry (a flat image), what changes is the colour, by at most ~10-20%."""
    x = torch.full((256, 3, 32, 32), 100, dtype=torch.uint8)
    x[:, 0] = 160
    y = (augment_batch(x, gen(3)) + 1) * 127.5
    means = y.mean(dim=(2, 3))
    assert means.std(0).min() > 0.5  # something changes per image
    assert (means[:, 0] - 160).abs().max() < 32 and (means[:, 1:] - 100).abs().max() < 25


def test_augment_has_no_per_image_loop():
    x = torch.from_numpy(small(256, 10).x_train)
    counts = []
    for b in (4, 256):
        with OpCounter() as mode:
            augment_batch(x[:b], gen(0))
        counts.append(mode.calls)
    assert counts[0] == counts[1] and counts[0] < 200


# ----------------------------------------------------------------------------------------------- DeviceData

@pytest.fixture(scope="module")
def dd() -> DeviceData:
    return DeviceData(small(300, 70), torch.device("cpu"))


def test_device_data_attributes(dd):
    assert (dd.num_train, dd.num_test, dd.num_classes, dd.channels, dd.image_size) == (300, 70, 10, 3, 32)
    assert dd.classes == SYNTHETIC_CLASSES
    assert dd.x_train.dtype == torch.uint8 and dd.y_train.dtype == torch.int64


def test_steps_per_epoch_drops_the_partial_batch(dd):
    assert dd.steps_per_epoch(128) == 2 and dd.steps_per_epoch(100) == 3 and dd.steps_per_epoch(1) == 300
    with pytest.raises(DataError, match="fewer than one batch"):
        dd.steps_per_epoch(301)


def test_epoch_order_is_a_permutation(dd):
    g = torch.Generator().manual_seed(0)
    a, b = dd.epoch_order(g), dd.epoch_order(g)
    assert torch.equal(torch.sort(a).values, torch.arange(300)) and not torch.equal(a, b)
    assert torch.equal(a, dd.epoch_order(torch.Generator().manual_seed(0)))


def test_train_batch(dd):
    idx = dd.epoch_order(gen(0))[:16]
    x, y = dd.train_batch(idx, None, augment=False)
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(x, to_unit_range(dd.x_train[idx])) and torch.equal(y, dd.y_train[idx])
    xa, ya = dd.train_batch(idx, gen(1), augment=True)
    assert xa.shape == x.shape and torch.equal(ya, y) and not torch.equal(xa, x)
    assert torch.equal(xa, augment_batch(dd.x_train[idx], gen(1)))
    with pytest.raises(ValueError):
        dd.train_batch(idx, None, augment=True)


def test_test_batches_cover_every_image_once_unaugmented(dd):
    batches = list(dd.test_batches(32))
    assert [b[0].shape[0] for b in batches] == [32, 32, 6]
    xs, ys = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    assert torch.equal(ys, dd.y_test) and torch.equal(xs, to_unit_range(dd.x_test))


def test_mean_test_image(dd):
    m = dd.mean_test_image()
    ref = dd.x_test.double().mean(0) / 127.5 - 1
    assert m.shape == (3, 32, 32) and m.dtype == torch.float32 and torch.allclose(m.double(), ref, atol=1e-5)


@pytest.mark.gpu
def test_cuda_batches_need_no_host_sync():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    dev = torch.device("cuda")
    d = DeviceData(small(300, 70), dev)
    g = torch.Generator(device=dev).manual_seed(0)
    d.train_batch(d.epoch_order(g)[:128], g, augment=True)  # warm-up: one-time constants reach the device
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        idx = d.epoch_order(g)[:128]
        x, y = d.train_batch(idx, g, augment=True)
        x2, _ = d.train_batch(idx, None, augment=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert x.device.type == "cuda" and x.shape == (128, 3, 32, 32) and x2.shape == x.shape


# ----------------------------------------------------------------------------------------------- learnability

@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~2 min on an idle 2-core machine; the suite's 600 s would cut it on a busy one
def test_width32_discriminator_learns_synthetic_in_three_epochs(cache):
    """Acceptance: the course's D at width 32, Adam 1e-4, batch 128, CE on fc10, augmented: >= 90% in 3 epochs."""
    from engine.compute.models.acgan import ACGANDConfig, ACGANDiscriminator

    torch.manual_seed(0)
    data = DeviceData(load_splits("synthetic"), torch.device("cpu"))
    model = ACGANDiscriminator(ACGANDConfig(width=32))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    g = gen(0)
    accs = []
    for _epoch in range(3):
        model.train()
        order = data.epoch_order(g)
        for i in range(data.steps_per_epoch(128)):
            x, y = data.train_batch(order[i * 128:(i + 1) * 128], g, augment=True)
            loss = F.cross_entropy(model(x)[1], y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in data.test_batches(500):
                correct += int((model(x)[1].argmax(1) == y).sum())
        accs.append(100.0 * correct / data.num_test)
    print("test accuracy per epoch:", [round(a, 1) for a in accs])
    assert accs[0] < 99.0, f"the synthetic set is trivial: {accs}"
    assert accs[-1] >= 90.0, f"width-32 discriminator did not reach 90% in 3 epochs: {accs}"

