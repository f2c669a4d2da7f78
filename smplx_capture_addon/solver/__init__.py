"""The SMPLify-X solver: fit an SMPL-X-layout body to 2D keypoints of one photo.

It knows nothing of Blender or of detectors. The core (`fitting.fit_keypoints`) takes
keypoints as a plain array (B, K, 3) of (x, y, confidence) per name of
`body_model.names.KEYPOINT_NAMES_WITH_CONTOUR` (or `KEYPOINT_NAMES`), with a pinhole
camera per row, and optimises all people of a batch at once. `pipeline.fit_photo` takes
one fit request (`worker.request.FitRequest`), puts a detector in front of the core and
turns its output into the project's result file.
"""
