"""The model-facing wing of the Gymnasium side: wrappers that see an environment through a
trained world model.

It sits above the pixel environments of :mod:`keypoint_wm.envs` (which collection needs
without any model) and below the command line. Each module holds one idea:

- :mod:`~keypoint_wm.envs.latent.online`: the online filter (detector, posterior, GRU) that
  turns one frame at a time into the model's latent state;
- :mod:`~keypoint_wm.envs.latent.base`: what the three wrappers below share (the model side
  of their constructors, one step of the model, the final frames of ended episodes);
- :mod:`~keypoint_wm.envs.latent.wrapper`: :class:`LatentObservation`, a Gymnasium wrapper;
- :mod:`~keypoint_wm.envs.latent.vector`: :class:`LatentVectorObservation`, its vector twin;
- :mod:`~keypoint_wm.envs.latent.sb3`: :class:`LatentVecEnv`, a Stable-Baselines3 wrapper;
- :mod:`~keypoint_wm.envs.latent.dream`: :class:`DreamEnv`, stepped by the model's prior;
- :mod:`~keypoint_wm.envs.latent.adapters`: actions and frames between env and model.
- :mod:`~keypoint_wm.envs.latent.replay`: a run's wrapper stepped on recorded frames, no
  simulator (``keypoint-wm bench replay``).
"""
