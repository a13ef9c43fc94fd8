"""The demo model of dd-live: a small EEG-to-image model that really decodes the synthetic states.

- :mod:`training.demo.world`: the demo world: live windows of the synthetic source (as the app
  sees them) and a procedurally drawn image family per state.
- :mod:`training.demo.classifier`: a tiny CNN that names the state of an image (quality check).
- :mod:`training.demo.quality`: the measured figures (decoding accuracy, image accuracy, speed).
- :mod:`training.demo.build`: ``python -m training.demo.build --out dd_live/assets/demo`` builds it all.
"""
