"""Data for the workers: load a split pair, hold it on the training device, cut and augment batches there.

- `sources.load_splits` reads any dataset spec into host-side uint8 arrays (`splits.Splits`): `npz:PATH`
  and torchvision's `cifar10` / `mnist` itself, `imagefolder:PATH` through `imagefolder`, the embedded
  `synthetic` sets through `synthetic` (generated once per node, then cached).
- `splits` validates those arrays and reshapes them for a recipe (`select_classes`, `conform`).
- `device_data.DeviceData` moves both splits to the device once; `augment` is the train transform there.

These modules import torch: only compute code imports them (never `tui/` or `store/`).
"""
