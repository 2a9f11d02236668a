"""A synthetic dataset in the Aff-Wild2 layout (``edgeaff synth``): the built-in demo data and the test data.

Faces come from two public-domain photographs (``assets/``), varied per person; valence shows in the mouth and
brows, arousal is heard in a speech-like voice (loudness, pitch, syllable rate, brightness) and shows only faintly in
the eyelids and head motion. Nothing here imports torch, so the command works on a runtime-only install.
"""

from edgeaff.synth.dataset import MANIFEST, SynthSummary, generate_dataset
from edgeaff.synth.plan import PRESETS, SynthPreset, subject_of_trial

__all__ = ["MANIFEST", "PRESETS", "SynthPreset", "SynthSummary", "generate_dataset", "subject_of_trial"]
