"""The classical digital baselines: one fixed image codec + LDPC + QAM configuration
(``digital``), and the best configuration per SNR chosen from the PHY's measured error rates
(``digital-envelope``), with the capacity-achieving ideal beside it."""
from testbed.systems.digital.system import LOST_FILL, DigitalSystem, _image_metrics  # noqa: F401  (registration)
from testbed.systems.digital import envelope  # noqa: F401,E402  (registration)
