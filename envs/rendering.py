"""Fast offscreen rendering of a dm_control ``Physics`` that matches the suite's own images.

Three things make :class:`PixelRenderer` 2.4-3.9x faster than ``physics.render(h, w,
camera_id)`` while keeping its pixels (measured with :mod:`keypoint_wm.envs.render_check`,
64x64, camera 0, the six paper tasks, Mesa llvmpipe on 2 CPU cores):

- A smaller shadow map. The suite's models ask for a 2048x2048 shadow map, and rendering and
  clearing it is most of the cost of a small frame. :func:`default_shadow_size` picks 256 for
  images up to 64 pixels: worst task 0.04 mean absolute difference (on 0-255) from the
  suite's images. 128 also stays under 0.1 but uses most of that margin (0.09 on walker) and
  is only 2-7 % faster, so it is not the default.
- An offscreen framebuffer of the image's size instead of the suite's 640x480 (13-27 %):
  each frame clears and resolves the whole multisampled buffer.
- One persistent camera (scene) instead of a new one per frame (about 10 %).

The physics' framebuffer is then only as large as the image: ``physics.render`` of a larger
view on the same physics raises ``ValueError``; render such views from another environment.

Other ``vis.quality`` settings were measured and rejected: ``offsamples`` (multisampling)
0 is faster but differs by 0.4-1.1; 2 or 8 render exactly like the default 4 on llvmpipe and
are no faster; coarser sphere/capsule tessellation (``numslices``/``numstacks``) differs by
0.05-0.4. All of these must be set before the model's GL context is created, which is why the
renderer applies them before its first render.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keypoint_wm.envs.gl import gl_context_errors

__all__ = ["SUITE_SHADOW_SIZE", "PixelRenderer", "default_shadow_size"]

SUITE_SHADOW_SIZE = 2048
"""The shadow map size the suite's models ask for (``<quality shadowsize="2048"/>``)."""

# (largest image side, shadow map size): the smallest size measured to stay within a mean
# absolute pixel difference of 0.1 of the suite's own rendering on the six paper tasks.
_SHADOW_SIZE_BY_IMAGE_SIDE = ((64, 256), (96, 512), (128, 1024))


def default_shadow_size(height: int, width: int) -> int:
    """A fast shadow map size whose images match the suite's (mean abs. difference <= 0.1).

    Measured (mean absolute difference to the suite's 2048 map, worst of the six paper
    tasks): 64x64 -> 256 (0.04; 128 gives 0.09, 64 gives 0.19); 84x84 -> 512 (0.03);
    128x128 -> 1024 (0.01; 512 gives 0.13 on reacher). Larger images keep the suite's 2048.
    """
    side = max(height, width)
    for max_side, shadow_size in _SHADOW_SIZE_BY_IMAGE_SIDE:
        if side <= max_side:
            return shadow_size
    return SUITE_SHADOW_SIZE


class PixelRenderer:
    """Renders one fixed camera of a dm_control ``Physics`` to uint8 ``[H, W, 3]`` images.

    Args:
        physics: a ``dm_control.mujoco.Physics`` whose GL context has not been created yet
            (nothing rendered it before), so that ``shadow_size`` can take effect.
        height, width: image size in pixels (positive).
        camera_id: index of a fixed camera of the model (resolved by the caller).
        shadow_size: shadow map size; ``None`` picks :func:`default_shadow_size`,
            :data:`SUITE_SHADOW_SIZE` renders exactly like the suite.

    Raises:
        keypoint_wm.envs.gl.RenderBackendError: no OpenGL context could be created.
    """

    def __init__(
        self,
        physics: Any,
        height: int,
        width: int,
        camera_id: int,
        shadow_size: int | None = None,
    ) -> None:
        from dm_control.mujoco.engine import Camera

        self.height = int(height)
        self.width = int(width)
        self.camera_id = int(camera_id)
        self.shadow_size = (
            default_shadow_size(self.height, self.width) if shadow_size is None else shadow_size
        )
        self._physics = physics
        model = physics.model
        if getattr(physics, "_contexts", None):
            raise RuntimeError(
                "PixelRenderer needs a physics that has not rendered yet: the shadow map size "
                "is fixed when the GL context is created"
            )
        model.vis.quality.shadowsize = int(self.shadow_size)
        # An offscreen framebuffer of exactly the image size (the suite's is 640x480, dog's
        # 1920x1080): same pixels, 13-27 % faster at 64x64, since every frame clears and
        # resolves the whole multisampled buffer.
        model.vis.global_.offwidth = self.width
        model.vis.global_.offheight = self.height
        with gl_context_errors():
            _ = physics.contexts  # creates the GL and MuJoCo rendering contexts
        self._camera: Any = Camera(physics, self.height, self.width, self.camera_id)

    def render(self) -> np.ndarray:
        """The camera's view of the current physics state, uint8 ``[H, W, 3]`` (a new array)."""
        if self._camera is None:
            raise RuntimeError("the renderer is closed")
        self._own_context()
        return np.array(self._camera.render(), dtype=np.uint8, copy=True)

    def _own_context(self) -> None:
        """Make the physics' GL context current again, even when dm_control believes it is.

        dm_control remembers which of its contexts it made current and skips the call when
        asked again; another renderer in the process (Gymnasium MuJoCo's, ``collect --env``
        beside DMCS tasks) may have made its own current since, and the frame would be drawn
        into that one. Re-asserting an already current context costs next to nothing."""
        gl = self._physics.contexts.gl
        with gl.make_current() as ctx:
            ctx.call(gl._platform_make_current)

    def segmentation(self) -> np.ndarray:
        """Per-pixel ``(object id, object type)`` int32 ``[H, W, 2]``; background is -1.

        For geoms the type is ``mujoco.mjtObj.mjOBJ_GEOM`` and ``model.geom_bodyid[id]`` gives
        the body.
        """
        if self._camera is None:
            raise RuntimeError("the renderer is closed")
        return np.array(self._camera.render(segmentation=True), copy=True)

    def close(self) -> None:
        """Drop the camera (its scene is freed with it). Safe to call twice.

        The GL context belongs to the physics and is freed by ``physics.free()``.
        """
        self._camera = None
