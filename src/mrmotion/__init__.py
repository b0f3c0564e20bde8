"""mrmotion: motion in MRI — frames and transforms, tracker calibration, prospective updates, simulation, correction.

Conventions (DESIGN.md §2): transforms are float64 ``(..., 4, 4)`` named ``target_from_source``; millimetres and
radians inside, degrees only where people read or type; world coordinates in LPS mm; quaternions scalar-last.
"""

__version__ = "0.1.0"
