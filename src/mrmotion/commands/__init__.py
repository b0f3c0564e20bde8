"""File-level operations behind the command line: read inputs, call the library, write outputs.

Each checks every input before writing anything, writes outputs atomically and never over an input, and returns
what it computed so the CLI and the demo can print it.
"""

from mrmotion.commands.geometry import calibrate_files, motion_report_file, prescribe_files, tracker_motion_file

__all__ = ["calibrate_files", "motion_report_file", "prescribe_files", "tracker_motion_file"]
