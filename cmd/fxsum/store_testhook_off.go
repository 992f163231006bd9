//go:build !fxsumtest

package main

// The database's test hooks are empty in a binary built without the
// fxsumtest tag: see store_testhook.go.

func hookChecked()  {}
func hookMade()     {}
func hookFound()    {}
func hookWALTried() {}
