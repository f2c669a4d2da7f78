"""A video to a motion: frames read one at a time (`frames`), the chosen person followed
from frame to frame (`tracks`), the clip fitted with one shape and smoothed in time
(`clip_fit`, `smoothing`), the feet held on the ground where they stand (`feet`), and the
`fit-video` command (`cli`). The result is a `motion_format.Motion`. No Blender."""
