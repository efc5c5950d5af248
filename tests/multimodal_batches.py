"""A tiny Qwen2.5-VL and batches with images: what the vision-language tests build.

The config is the smallest that runs every path of the vision tower: 2 blocks (block 0 attends within
windows, block 1 over the whole image: `fullatt_block_indexes`), 2x2 patch merging, and images of
4x8 patches, so the 2x4 grid of merged tokens spans two windows of 2x2. The text decoder is the
families' tiny decoder (hidden 32, 4 query / 2 key-value heads of 8 channels), its rope split into
mrope sections 2 + 1 + 1 (temporal, height, width) of the 4 frequencies of a head.
"""

from __future__ import annotations

import torch


VOCAB_SIZE = 99
IMAGE_TOKEN_ID, VIDEO_TOKEN_ID, VISION_START_TOKEN_ID, VISION_END_TOKEN_ID = 95, 96, 97, 98
PATCH_SIZE, TEMPORAL_PATCH_SIZE, IN_CHANNELS, SPATIAL_MERGE_SIZE = 2, 2, 3, 2
IMAGE_GRID = (1, 4, 8)  # (temporal, height, width) in patches: 32 patches, 8 tokens after 2x2 merging

TEXT_CONFIG = dict(
    vocab_size=VOCAB_SIZE,
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]},
    attention_dropout=0.0,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)
VISION_CONFIG = dict(
    depth=2,
    hidden_size=32,
    intermediate_size=40,
    num_heads=2,
    in_channels=IN_CHANNELS,
    patch_size=PATCH_SIZE,
    temporal_patch_size=TEMPORAL_PATCH_SIZE,
    spatial_merge_size=SPATIAL_MERGE_SIZE,
    window_size=8,  # 8 pixels = 4 patches = 2 merged tokens: windows of 2x2 merged tokens
    fullatt_block_indexes=[1],
    out_hidden_size=32,
)
QWEN2_5_VL = dict(
    text_config=TEXT_CONFIG,
    vision_config=VISION_CONFIG,
    image_token_id=IMAGE_TOKEN_ID,
    video_token_id=VIDEO_TOKEN_ID,
    vision_start_token_id=VISION_START_TOKEN_ID,
    vision_end_token_id=VISION_END_TOKEN_ID,
)


def image_tokens(grid=IMAGE_GRID) -> int:
    temporal, height, width = grid
    return temporal * height * width // SPATIAL_MERGE_SIZE**2


def pixel_values(images: int, grid=IMAGE_GRID, seed: int = 0) -> torch.Tensor:
    """`[patches, channels * temporal * patch * patch]` random pixels for `images` images of `grid` patches."""
    patches = images * grid[0] * grid[1] * grid[2]
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(patches, IN_CHANNELS * TEMPORAL_PATCH_SIZE * PATCH_SIZE**2, generator=generator)


def image_row(length: int, image_at: int, seed: int) -> torch.Tensor:
    """`length` text tokens with one image (start token, placeholders, end token) from position `image_at`."""
    generator = torch.Generator().manual_seed(seed)
    row = torch.randint(3, VISION_START_TOKEN_ID - 3, (length,), generator=generator)
    row[image_at] = VISION_START_TOKEN_ID
    row[image_at + 1 : image_at + 1 + image_tokens()] = IMAGE_TOKEN_ID
    row[image_at + 1 + image_tokens()] = VISION_END_TOKEN_ID
    return row


def image_batch(image_at=(2, 5), length: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    """One image per row, starting at `image_at[row]`: input_ids, mm_token_type_ids, pixel_values, image_grid_thw."""
    input_ids = torch.stack([image_row(length, at, seed + row) for row, at in enumerate(image_at)])
    return {
        "input_ids": input_ids,
        "mm_token_type_ids": (input_ids == IMAGE_TOKEN_ID).int(),
        "pixel_values": pixel_values(len(image_at), seed=seed),
        "image_grid_thw": torch.tensor([IMAGE_GRID] * len(image_at)),
    }
