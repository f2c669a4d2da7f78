"""The SMPLify-X solver: fit an SMPL-X-layout body to 2D keypoints of one photo.

It knows nothing of Blender or of detectors. The core (`keypoint_fit.fit_keypoints`)
takes keypoints as a plain array (B, K, 3) of (x, y, confidence) per name of
`body_model.names.KEYPOINT_NAMES_WITH_CONTOUR` (or `KEYPOINT_NAMES`), with a pinhole
camera per row, and optimises all people of a batch at once, from scratch or from a given
start, with chosen joints held. `pipeline.fit_photo` takes one
fit request (`fit_request.FitRequest`), puts a detector in front of the core and turns
its output into the project's result file.

Where things are:
- `options`: every setting of a fit; `schedule`: the reference's stage weights;
- `inputs`: checks and preparation of the keypoints; `keypoint_groups`: body, hands,
  face, torso as index sets;
- `start`: facing, lean and the first guess, or a start from a result file;
- `packing`: the unknowns as one tensor, which columns a stage frees, held joints;
- `objective`: the terms a stage minimises (data, priors, collision) and their
  derivatives; `priors`, `collision`, `camera`, `learned_priors`: the terms themselves;
- `stages`: the stage records, the SMPLify-X plan and the loop that runs it;
  `optimisers`, `lbfgs`, `lm`: how a stage minimises;
- `hypotheses`, `variants`: the alternatives one photo leaves open, as rows of the batch;
  `restart`: fits that miss their keypoints fitted again; `reprojection`: the measure;
- `keypoint_fit`: the entry point; `fit_result`: what it returns.
"""
