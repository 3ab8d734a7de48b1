"""Training: candidates, tuning, calibration, evaluation, plots and the `train` stage."""
