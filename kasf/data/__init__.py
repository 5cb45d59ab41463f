"""Data: the authors' prepared pickles (SportsPose, WorldPose), the embedded motion capture,
and 27-frame clips for training and evaluation."""
