package bench

import "testing"

func goFxpool(b *testing.B, w int, k taskKind)       { b.Skip("fxpool not ready") }
func doFxpool(b *testing.B, w int, k taskKind)       { b.Skip("fxpool not ready") }
func doFxpoolSubmit(b *testing.B, w int, k taskKind) { b.Skip("fxpool not ready") }
func resourceFxpool(b *testing.B, w int, k taskKind) { b.Skip("fxpool not ready") }
func startStopFxpool(b *testing.B, c lifecycleCase)  { b.Skip("fxpool not ready") }
func idleFxpool(b *testing.B, n int) func()          { b.Skip("fxpool not ready"); return nil }
