"""`imagefolder:PATH`: recursive discovery, Pillow decoding of common formats, resize + centre crop, grey vs
colour, labels from subfolders, the held-out split, one-line errors (torch-free check and loader), and a
DCGAN run on a generated folder of 64x64 PNGs through the real worker."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.compute.data.imagefolder import load_imagefolder
from engine.compute.data.sources import load_splits
from engine.compute.data.splits import DataError
from engine.control.config import resolve_config
from engine.control.datasets import check_dataset_available, check_imagefolder, image_files
from engine.control.errors import ConfigError
from tests.helpers import make_run_dir, records, run_worker


def write_image(path, array: np.ndarray, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)


def colour_folder(root, n_per_class: int = 6, size: int = 64) -> None:
    """Two classes in subfolders (one nested a level deeper), PNG and JPEG and BMP, solid colours."""
    rng = np.random.default_rng(0)
    for i in range(n_per_class):
        red = np.zeros((size, size, 3), np.uint8)
        red[..., 0] = 200 + rng.integers(0, 40)
        write_image(root / "red" / f"r{i}.png", red)
        blue = np.zeros((size, size, 3), np.uint8)
        blue[..., 2] = 200 + rng.integers(0, 40)
        ext = ("jpg", "bmp")[i % 2]
        write_image(root / "blue" / "deeper" / f"b{i}.{ext}", blue)


def test_recursive_discovery_labels_and_split(tmp_path):
    colour_folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    (tmp_path / "imgs" / ".hidden.png").write_bytes(b"ignored")
    files = image_files(tmp_path / "imgs")
    assert len(files) == 12 and all(f.suffix in (".png", ".jpg", ".bmp") for f in files)
    s = load_imagefolder(tmp_path / "imgs", 32)
    assert s.classes == ("blue", "red")
    assert s.x_train.shape[1:] == (3, 32, 32) and s.x_train.dtype == np.uint8
    assert s.x_train.shape[0] + s.x_test.shape[0] == 12 and s.x_test.shape[0] == 1  # one in ten held out
    x = np.concatenate([s.x_train, s.x_test])
    y = np.concatenate([s.y_train, s.y_test])
    red = x[y == 1].mean(axis=(0, 2, 3))
    blue = x[y == 0].mean(axis=(0, 2, 3))
    assert red[0] > 150 and red[2] < 30 and blue[2] > 150 and blue[0] < 30  # labels follow the subfolders


def test_resize_shorter_side_then_centre_crop(tmp_path):
    # 100 wide x 50 high: black left and right fifths, white in the middle 60 columns
    img = np.zeros((50, 100), np.uint8)
    img[:, 20:80] = 255
    write_image(tmp_path / "f" / "wide.png", img)
    s = load_imagefolder(tmp_path / "f", 20)
    assert s.x_train.shape == (1, 1, 20, 20)  # grey stays one channel
    # shorter side to 20 (40x20, white in columns 8-31), the centre 20 columns (10-29) are all white
    assert (s.x_train[0, 0] > 250).all()
    assert np.array_equal(s.x_train, s.x_test)  # fewer than ten images: the test split reuses them


def test_mixed_grey_and_colour_become_rgb(tmp_path):
    write_image(tmp_path / "m" / "g.png", np.full((8, 8), 128, np.uint8))
    write_image(tmp_path / "m" / "c.png", np.full((8, 8, 3), 50, np.uint8))
    s = load_imagefolder(tmp_path / "m", 8)
    assert s.channels == 3
    grey = s.x_train[0] if s.x_train[0].mean() > 100 else s.x_train[1]
    assert (grey == 128).all()  # a grey picture is repeated over R, G, B


def test_load_splits_routes_imagefolder_with_the_recipe_size(tmp_path):
    colour_folder(tmp_path / "imgs", n_per_class=2, size=40)
    s = load_splits(f"imagefolder:{tmp_path / 'imgs'}", image_size=64)
    assert s.x_train.shape[2:] == (64, 64) and s.source.startswith("imagefolder:")


def test_empty_folder_is_a_one_line_error(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "readme.txt").write_text("x")
    for exc, call in ((ConfigError, lambda: check_imagefolder(str(tmp_path / "empty"))),
                      (DataError, lambda: load_imagefolder(tmp_path / "empty", 64))):
        with pytest.raises(exc) as e:
            call()
        msg = str(e.value)
        assert "holds no images" in msg and str(tmp_path / "empty") in msg and "\n" not in msg


def test_missing_and_non_folder_paths(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        check_imagefolder(str(tmp_path / "nope"))
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(ConfigError, match="is not a folder"):
        check_imagefolder(str(tmp_path / "file.png"))
    with pytest.raises(ConfigError, match="needs a folder after 'imagefolder:'"):
        resolve_config("dcgan", assignments=["dataset=imagefolder:"])
    cfg = resolve_config("dcgan", assignments=[f"dataset=imagefolder:{tmp_path / 'nope'}"])
    with pytest.raises(ConfigError, match="does not exist"):
        check_dataset_available(cfg)


def test_unreadable_files_are_named(tmp_path):
    colour_folder(tmp_path / "imgs", n_per_class=2)
    (tmp_path / "imgs" / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (tmp_path / "imgs" / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0")
    with pytest.raises(DataError) as e:
        load_imagefolder(tmp_path / "imgs", 16)
    msg = str(e.value)
    assert "2 of 6 image files are unreadable" in msg
    assert "red/broken.png" in msg and "truncated.jpg" in msg and "\n" not in msg


@pytest.fixture
def png_folder(tmp_path):
    """40 colour 64x64 PNGs of blurred blobs in two nested class folders."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:64, 0:64]
    for i in range(40):
        cx, cy = rng.uniform(16, 48, 2)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 120.0)
        img = np.stack([blob * rng.uniform(100, 255), blob * 80, (1 - blob) * 160], -1).astype(np.uint8)
        write_image(tmp_path / "faces" / ("a" if i % 2 else "b") / f"img_{i:03d}.png", img)
    return tmp_path / "faces"


@pytest.mark.slow
def test_dcgan_trains_on_a_folder_of_pngs(tmp_path, png_folder):
    run_dir = make_run_dir(tmp_path, "dcgan", f"dataset=imagefolder:{png_folder}", "width=4", "batch_size=8",
                           "epochs=2", "log_every=2", "device=cpu", "threads=1", "samples=16")
    out = run_worker(run_dir)
    assert out.returncode == 0, out.stderr
    start = records(run_dir, "start")[0]
    assert start["train_images"] == 36 and start["test_images"] == 4 and start["steps_per_epoch"] == 4
    epochs = records(run_dir, "epoch")
    assert [e["epoch"] for e in epochs] == [1, 2] and all(e["diversity"] > 0 for e in epochs)
    with Image.open(run_dir / "samples" / "epoch_002.png") as im:
        assert im.size == (8 * 66 + 2, 2 * 66 + 2) and im.mode == "RGB"  # 16 colour 64x64 samples, 8 a row
    assert (run_dir / "checkpoints" / "final.pt").exists()
    assert records(run_dir, "end")[-1]["status"] == "completed"


def test_worker_reports_an_unreadable_folder_in_one_line(tmp_path, png_folder):
    (png_folder / "a" / "zz_bad.gif").write_bytes(b"GIF89a garbage")
    run_dir = make_run_dir(tmp_path, "dcgan", f"dataset=imagefolder:{png_folder}", "width=4", "batch_size=8",
                           "epochs=1", "device=cpu", "threads=1")
    out = run_worker(run_dir)
    assert out.returncode == 2
    end = records(run_dir, "end")[-1]
    assert end["status"] == "failed" and "a/zz_bad.gif" in end["error"] and "\n" not in end["error"]
