"""How much memory fake data takes at its peak, and how much a job may ask for.

Fake data is generated into memory, so one request could otherwise ask for absurd amounts;
Hyperparameters refuses a fake dataset whose peak, as counted here, is over the limit.
"""

from __future__ import annotations

# The most memory fake data may take at its peak, as `fake_data_peak_bytes` counts it.
MAX_FAKE_DATA_BYTES = 2 * 1024**3
# Per sample: its uint8 pixels, plus an int64 label and an int64 index into the split.
FAKE_SAMPLE_OVERHEAD_BYTES = 16
# Fixed: the generator's float32 chunk and the freed batches glibc keeps (up to twice its 32 MiB
# top mmap threshold; measured up to 58 MiB). tests/training/test_fake_data_memory.py holds the
# sum to the measured peak.
FAKE_WORKING_BYTES = 128 * 1024**2
# Per pixel of a batch: the loader gathers it as uint8 (1 byte), converts it to float32 (4) and,
# for channels_last, copies it once more (4), while the loop still holds the last batch (1 + 4).
FAKE_BATCH_BYTES_PER_PIXEL = 14


def fake_data_peak_bytes(*, samples: int, channels: int, image_size: int, batch_size: int) -> int:
    """Peak memory of a fake dataset: generated straight into uint8, then served a batch at a time."""
    pixels = channels * image_size**2
    return (
        FAKE_WORKING_BYTES
        + samples * (pixels + FAKE_SAMPLE_OVERHEAD_BYTES)
        + FAKE_BATCH_BYTES_PER_PIXEL * min(batch_size, samples) * pixels
    )


def most_fake_samples(*, channels: int, image_size: int, batch_size: int) -> int:
    """The largest fake_samples whose peak fits MAX_FAKE_DATA_BYTES at this size and batch size."""
    pixels = channels * image_size**2
    room = MAX_FAKE_DATA_BYTES - FAKE_WORKING_BYTES
    # The peak grows with samples and with a batch of min(batch_size, samples): solve on both
    # sides of that minimum and keep the larger, which is the side that holds.
    batch_of_batch_size = (room - FAKE_BATCH_BYTES_PER_PIXEL * batch_size * pixels) // (
        pixels + FAKE_SAMPLE_OVERHEAD_BYTES
    )
    batch_of_all_samples = room // ((1 + FAKE_BATCH_BYTES_PER_PIXEL) * pixels + FAKE_SAMPLE_OVERHEAD_BYTES)
    return max(batch_of_batch_size, batch_of_all_samples)


def fake_data_problem(*, samples: int, channels: int, image_size: int, batch_size: int) -> str | None:
    """Why this fake dataset is refused (what to lower, and to what), or None when it fits."""
    peak = fake_data_peak_bytes(
        samples=samples, channels=channels, image_size=image_size, batch_size=batch_size
    )
    if peak <= MAX_FAKE_DATA_BYTES:
        return None
    # Always at least the smallest fake_samples allowed: 20 of the largest images fit.
    most = most_fake_samples(channels=channels, image_size=image_size, batch_size=batch_size)
    return (
        f"fake data would take {peak / 1024**2:.0f} MiB at its peak (the images as uint8 plus "
        f"batches as floats), over the {MAX_FAKE_DATA_BYTES // 1024**2} MiB limit: lower fake_samples "
        f"to at most {most} at this image_size and batch_size, or lower image_size, fake_channels "
        "or batch_size"
    )
