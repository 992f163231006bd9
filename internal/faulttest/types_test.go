// Code written by hand from a template: the menu of resource types of the
// property test. Tk has no Close method, Ek has Close() error, Xk has
// Close(context.Context) error. Each embeds the *res it records with.

package faulttest

import (
	"context"
	"reflect"
)

type (
	T0 struct{ *res }
	E0 struct{ *res }
	X0 struct{ *res }
	T1 struct{ *res }
	E1 struct{ *res }
	X1 struct{ *res }
	T2 struct{ *res }
	E2 struct{ *res }
	X2 struct{ *res }
	T3 struct{ *res }
	E3 struct{ *res }
	X3 struct{ *res }
	T4 struct{ *res }
	E4 struct{ *res }
	X4 struct{ *res }
	T5 struct{ *res }
	E5 struct{ *res }
	X5 struct{ *res }
	T6 struct{ *res }
	E6 struct{ *res }
	X6 struct{ *res }
	T7 struct{ *res }
	E7 struct{ *res }
	X7 struct{ *res }
)

func (v *E0) Close() error                { return v.res.closeVia(viaMethod) }
func (v *X0) Close(context.Context) error { return v.res.closeVia(viaMethod) }
func (v *E1) Close() error                { return v.res.closeVia(viaMethod) }
func (v *X1) Close(context.Context) error { return v.res.closeVia(viaMethod) }
func (v *E2) Close() error                { return v.res.closeVia(viaMethod) }
func (v *X2) Close(context.Context) error { return v.res.closeVia(viaMethod) }
func (v *E3) Close() error                { return v.res.closeVia(viaMethod) }
func (v *X3) Close(context.Context) error { return v.res.closeVia(viaMethod) }
func (v *E4) Close() error                { return v.res.closeVia(viaMethod) }
func (v *X4) Close(context.Context) error { return v.res.closeVia(viaMethod) }
func (v *E5) Close() error                { return v.res.closeVia(viaMethod) }
func (v *X5) Close(context.Context) error { return v.res.closeVia(viaMethod) }
func (v *E6) Close() error                { return v.res.closeVia(viaMethod) }
func (v *X6) Close(context.Context) error { return v.res.closeVia(viaMethod) }
func (v *E7) Close() error                { return v.res.closeVia(viaMethod) }
func (v *X7) Close(context.Context) error { return v.res.closeVia(viaMethod) }

// menu[k][variant] is the pointer type of node k: variant 0 is Tk, 1 Ek, 2 Xk.
var menu = [8][3]reflect.Type{
	{reflect.TypeFor[*T0](), reflect.TypeFor[*E0](), reflect.TypeFor[*X0]()},
	{reflect.TypeFor[*T1](), reflect.TypeFor[*E1](), reflect.TypeFor[*X1]()},
	{reflect.TypeFor[*T2](), reflect.TypeFor[*E2](), reflect.TypeFor[*X2]()},
	{reflect.TypeFor[*T3](), reflect.TypeFor[*E3](), reflect.TypeFor[*X3]()},
	{reflect.TypeFor[*T4](), reflect.TypeFor[*E4](), reflect.TypeFor[*X4]()},
	{reflect.TypeFor[*T5](), reflect.TypeFor[*E5](), reflect.TypeFor[*X5]()},
	{reflect.TypeFor[*T6](), reflect.TypeFor[*E6](), reflect.TypeFor[*X6]()},
	{reflect.TypeFor[*T7](), reflect.TypeFor[*E7](), reflect.TypeFor[*X7]()},
}
