"""Entropy-and-channel-adaptive rate control over a MU-MIMO uplink
(../shared/seeds/004_04072a72b64c0519.txt): K single-antenna users, one base station with M
antennas. detection.py holds the base station's receiver maths of the paper's system model
(Sec. II): orthogonal pilots per user, LS channel estimation, the SNR of eqs. (6)-(7), LMMSE
detection of the K streams by eq. (8), per-stream post-detection SINR and MSE, and the imperfect
CSI of Sec. IV-A, H_hat = H + dH with dH ~ CN(0, sigma_e^2), sigma_e^2 = sigma_n^2."""
