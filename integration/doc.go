// Package integration holds rollout's end-to-end tests. They run the real rollout binary
// (linux/amd64) against real OpenZFS in QEMU guests managed by the lab script beside this file:
// `integration/lab up` boots the guests once per test run, each test gets a fresh pool, and
// the guests are shut down when the run ends, also when a test fails or the run is interrupted.
//
// Set ROLLOUT_LAB_KEEP=1 to leave the guests up after the run (for debugging with
// `integration/lab exec`).
package integration
