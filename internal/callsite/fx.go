package callsite

import (
	"reflect"
	"runtime"
	"unsafe"

	"go.uber.org/fx"
)

// Caller returns the program counter of the call that the function calling
// Caller is in, skip frames up: Caller(1) in Provide is where the user
// called Provide. A Frame's PC is that of the call, not of its return.
func Caller(skip int) uintptr {
	var pcs [1]uintptr
	if runtime.Callers(skip+2, pcs[:]) == 0 {
		return 0
	}
	frame, _ := runtime.CallersFrames(pcs[:]).Next()
	return frame.PC
}

// Annotate returns fx.Annotate(target, anns...), a constructor for
// fx.Provide, whose errors from dig name the call at pc — where the user
// declared it — instead of the function that made target. A constructor
// made with reflect.MakeFunc is otherwise "reflect.makeFuncStub" in them:
// two pools of one type collide with neither named.
//
// dig has the option for this, dig.LocationForPC, meant for "functions
// created by the reflect.MakeFunc method". fx gives it the FuncPtr field of
// the value that fx.Annotate returns, and fx v1.24 never sets that field;
// Annotate sets it on its own copy of the value. If fx changes that value's
// shape (no FuncPtr uintptr field), Annotate returns it as fx made it, and
// dig names makeFuncStub again: TestAnnotateNamesTheCallSite, and
// workerpool's TestTwoPoolsOfOneTypeNameBothCallSites, then fail.
func Annotate(pc uintptr, target any, anns ...fx.Annotation) any {
	a := fx.Annotate(target, anns...)
	v := reflect.ValueOf(a)
	if pc == 0 || v.Kind() != reflect.Struct {
		return a
	}
	cp := reflect.New(v.Type()).Elem()
	cp.Set(v)
	f := cp.FieldByName("FuncPtr")
	if !f.IsValid() || f.Kind() != reflect.Uintptr || f.Uint() != 0 {
		return a
	}
	// cp is our own, addressable copy: write its unexported field.
	reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().SetUint(uint64(pc))
	return cp.Interface()
}
