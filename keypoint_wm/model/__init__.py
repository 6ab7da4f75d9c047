"""The Struct-VRNN world model: keypoint detector, reconstructor, VRNN dynamics, losses."""
