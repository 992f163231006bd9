// Package faulttest holds fxpool's reliability harness: a seeded property
// test that injects faults into random pools of per-worker resources and
// checks every guarantee of the lifecycle contract after each trial, and a
// load test that pushes millions of tiny tasks through a pool stopped at a
// random moment. It has no API; see RELIABILITY.md at the repository root
// for what each test tries, how many trials CI runs and how to run a soak.
package faulttest
