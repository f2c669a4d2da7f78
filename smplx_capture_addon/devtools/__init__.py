"""Development tools; they never ship: `build.py extension` leaves this package out of the zips.

It holds the synthetic benchmark (`bench`, its `bench` command in `cli_bench`, the fitting
problems with ground truth in `synthetic_cases`, the DeepMimic poses in `motions`), the
writer of synthetic SMPL-X-layout model files used by tests and benchmarks
(`synthetic_model`), and the generator and renderer of the open default body
(`open_body`). The add-on outside this package never imports it, except that the
command line registers `bench` when the package is present.
"""
