"""Training windows drawn on the device from a dataset held there as uint8.

At hundreds of steps per second a DataLoader (decompress a file, slice, collate, copy) is the
bottleneck; on a CPU its worker processes take cores from training. When the training split
fits in device memory (Basketball, 1000 x 50 frames of 64 x 64 x 3 bytes, is 0.6 GB), or in
RAM on a CPU, :class:`DeviceWindows` loads every frame once into one uint8 tensor
``[F, H, W, 3]`` and builds each batch with one gather per array.

The order is :class:`~keypoint_wm.data.sequences.WindowDataset`'s: window number ``i`` is the
same (episode, first frame) and the same reference frame, so a batch here equals the
DataLoader's batch with the same numbers, and a run may resume with either data path
(docs/design.md, "Training speed").

>>> import numpy as np, tempfile, torch
>>> from keypoint_wm.data.episodes import Episode, save_episode
>>> from keypoint_wm.data.sequences import EpisodeIndex, WindowDataset
>>> root = tempfile.mkdtemp()
>>> for i in range(3):
...     image = np.full((6, 8, 8, 3), i, np.uint8)
...     episode = Episode(image, np.zeros((6, 1), np.float32), np.zeros(6, np.float32))
...     _ = save_episode(f"{root}/ep{i}.npz", episode)
>>> dataset = WindowDataset(EpisodeIndex(root), window=4, seed=0)
>>> windows = DeviceWindows(dataset, torch.device("cpu"))
>>> batch = windows.batch(first_number=0, batch_size=2)
>>> batch["image"].shape, batch["image"].dtype
(torch.Size([2, 4, 8, 8, 3]), torch.uint8)
>>> bool((batch["image"][0] == dataset[0]["image"]).all())
True
"""

from __future__ import annotations

import os

import numpy as np
import torch
from tqdm.auto import tqdm

from keypoint_wm.data.episodes import load_episode
from keypoint_wm.data.sequences import WindowDataset

DEVICE_MEMORY_SHARE = 0.5
"""``placement="auto"`` holds the data on a CUDA device when it takes at most this share of
the device's free memory (the model's activations need the rest)."""

HOST_MEMORY_SHARE = 0.25
"""``placement="auto"`` holds the data in RAM on a CPU when it takes at most this share of the
memory available now: runs side by side (``train --seeds``, other jobs) each hold a copy."""


def dataset_bytes(dataset: WindowDataset) -> int:
    """Bytes of the uint8 frames, float32 actions and positions of the dataset's episodes."""
    height, width, channels = dataset.index.image_shape
    frames = sum(r.frames for r in dataset.index.records)
    per_frame = height * width * channels + 4 * dataset.action_size + 8 * dataset.num_objects
    return frames * (per_frame + 4)


def available_host_memory() -> int:
    """Bytes of RAM available to new allocations now (Linux ``MemAvailable``, else the free
    pages)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def fits_on_device(dataset: WindowDataset, device: torch.device) -> bool:
    """Whether ``placement="auto"`` should hold ``dataset`` on ``device``: on a CUDA device,
    within :data:`DEVICE_MEMORY_SHARE` of its free memory; on a CPU, within
    :data:`HOST_MEMORY_SHARE` of the available RAM (there the DataLoader's worker processes,
    decompressing an episode file per window, compete with training for the same cores)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return dataset_bytes(dataset) <= DEVICE_MEMORY_SHARE * free
    if device.type == "cpu":
        return dataset_bytes(dataset) <= HOST_MEMORY_SHARE * available_host_memory()
    return False


class DeviceWindows:
    """Every episode of ``dataset`` on ``device``; batches of windows by number.

    Args:
        dataset: the windows to draw (its index, window length, seed, reference rule).
        device: where the frames live and batches are built.
        progress: show a bar while loading.
    """

    def __init__(
        self, dataset: WindowDataset, device: torch.device, progress: bool = False
    ) -> None:
        self.dataset = dataset
        self.device = device
        records = dataset.index.records
        self._row = {record.path: i for i, record in enumerate(records)}
        lengths = np.array([r.frames for r in records], np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        total = int(lengths.sum())
        height, width, channels = dataset.index.image_shape
        action_size, num_objects = dataset.action_size, dataset.num_objects
        images = torch.empty((total, height, width, channels), dtype=torch.uint8, device=device)
        actions = torch.zeros((total, action_size), dtype=torch.float32)
        rewards = torch.zeros(total, dtype=torch.float32)
        positions = torch.zeros((total, num_objects, 2), dtype=torch.float32)
        tasks = torch.zeros(total, dtype=torch.long)
        for i, record in enumerate(
            tqdm(records, desc="data to device", unit="episode", disable=not progress)
        ):
            episode = load_episode(record.path)
            rows = slice(int(self._offsets[i]), int(self._offsets[i]) + record.frames)
            images[rows] = torch.from_numpy(episode.image).to(device)
            if action_size:
                actions[rows, : episode.action.shape[1]] = torch.from_numpy(episode.action)
            rewards[rows] = torch.from_numpy(episode.reward)
            if num_objects and episode.true_object_pos is not None:
                pos = episode.true_object_pos
                positions[rows, : pos.shape[1]] = torch.from_numpy(pos)
            tasks[rows] = dataset.task_id(record.task)
        self.images = images
        self.actions = actions.to(device)
        self.rewards = rewards.to(device)
        self.positions = positions.to(device)
        self.tasks = tasks.to(device)

    def frame_rows(
        self, first_number: int, batch_size: int, rank: int = 0, world_size: int = 1
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows of the frame tensor for batch ``first_number // batch_size``'s windows
        ``[B, T]`` and their reference frames ``[B]`` (None for frame 1): the numbers
        ``(first_number + j) * world_size + rank`` as :class:`CountingSampler` yields them."""
        window = self.dataset.window
        rows = np.empty((batch_size, window), np.int64)
        reference = np.empty(batch_size, np.int64) if self.dataset.reference != "first" else None
        for j in range(batch_size):
            number = (first_number + j) * world_size + rank
            record, start = self.dataset.locate(number)
            base = self._offsets[self._row[record.path]] + start
            rows[j] = np.arange(base, base + window)
            if reference is not None:
                other, frame = self.dataset.reference_of(number, record)
                reference[j] = self._offsets[self._row[other.path]] + frame
        return rows, reference

    def batch(
        self,
        first_number: int,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        out: dict[str, torch.Tensor | None] | None = None,
    ) -> dict[str, torch.Tensor]:
        """The batch of windows ``first_number ... first_number + batch_size - 1``.

        Keys as a DataLoader batch of :class:`WindowDataset` items: ``image`` uint8
        ``[B, T, H, W, 3]``, ``action`` ``[B, T, A]``, ``reward`` ``[B, T]``,
        ``true_object_pos`` ``[B, T, N, 2]``, ``task`` ``[B]`` and, with reference frames
        from other episodes, ``reference`` uint8 ``[B, H, W, 3]``. ``out`` may hold
        preallocated ``frames``/``actions``/``reference`` tensors (a captured graph's
        inputs) that the gathers write into.
        """
        rows_np, reference_np = self.frame_rows(first_number, batch_size, rank, world_size)
        rows = self._to_device(rows_np)
        flat = rows.flatten()
        shape = rows.shape
        out = out or {}
        image = self._gather(self.images, flat, out.get("frames"), (*shape, *self.images.shape[1:]))
        action = self._gather(self.actions, flat, out.get("actions"), (*shape, -1))
        batch = {
            "image": image,
            "action": action,
            "reward": self.rewards[flat].view(shape),
            "true_object_pos": self.positions[flat].view(*shape, *self.positions.shape[1:]),
            "task": self.tasks[rows[:, 0]],
        }
        if reference_np is not None:
            ref_rows = self._to_device(reference_np)
            batch["reference"] = self._gather(
                self.images, ref_rows, out.get("reference"), (len(ref_rows), *self.images.shape[1:])
            )
        return batch

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        # From page-locked memory the copy is asynchronous; from pageable memory CUDA first
        # waits for the stream, which would stall the host on every step.
        tensor = torch.from_numpy(array)
        if self.device.type == "cuda":
            tensor = tensor.pin_memory()
        return tensor.to(self.device, non_blocking=True)

    @staticmethod
    def _gather(
        source: torch.Tensor, rows: torch.Tensor, out: torch.Tensor | None, shape: tuple
    ) -> torch.Tensor:
        if out is not None and out.is_contiguous():
            torch.index_select(source, 0, rows, out=out.view(len(rows), *source.shape[1:]))
            return out
        return source.index_select(0, rows).view(shape)
