"""Science beyond the recipe (issue 21): calibration of multiple-choice answers and simulated surveys.

Commands: ``postlab calibration`` (postlab/science/calibration.py) and ``postlab survey``
(postlab/science/survey.py); the math is in docs/science.md.
"""
