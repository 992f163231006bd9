// Code written by hand from a template: the menu of resource types of the
// property test. Tk has no Close method, Ek has Close() error, Xk has
// Close(context.Context) error. Each embeds the *res it records with.

package faulttest

import (
	"context"
	"reflect"

	"github.com/fxpool/fxpool/resources"
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

func (v *E0) Close() error                { return v.res.closeVia(viaCloseMethod) }
func (v *X0) Close(context.Context) error { return v.res.closeVia(viaCloseMethod) }
func (v *E1) Close() error                { return v.res.closeVia(viaCloseMethod) }
func (v *X1) Close(context.Context) error { return v.res.closeVia(viaCloseMethod) }
func (v *E2) Close() error                { return v.res.closeVia(viaCloseMethod) }
func (v *X2) Close(context.Context) error { return v.res.closeVia(viaCloseMethod) }
func (v *E3) Close() error                { return v.res.closeVia(viaCloseMethod) }
func (v *X3) Close(context.Context) error { return v.res.closeVia(viaCloseMethod) }
func (v *E4) Close() error                { return v.res.closeVia(viaCloseMethod) }
func (v *X4) Close(context.Context) error { return v.res.closeVia(viaCloseMethod) }
func (v *E5) Close() error                { return v.res.closeVia(viaCloseMethod) }
func (v *X5) Close(context.Context) error { return v.res.closeVia(viaCloseMethod) }
func (v *E6) Close() error                { return v.res.closeVia(viaCloseMethod) }
func (v *X6) Close(context.Context) error { return v.res.closeVia(viaCloseMethod) }
func (v *E7) Close() error                { return v.res.closeVia(viaCloseMethod) }
func (v *X7) Close(context.Context) error { return v.res.closeVia(viaCloseMethod) }

// menu[k][closer] is the pointer type of node k: Tk, Ek or Xk.
var menu = [8][numCloseKinds]reflect.Type{
	{reflect.TypeFor[*T0](), reflect.TypeFor[*E0](), reflect.TypeFor[*X0]()},
	{reflect.TypeFor[*T1](), reflect.TypeFor[*E1](), reflect.TypeFor[*X1]()},
	{reflect.TypeFor[*T2](), reflect.TypeFor[*E2](), reflect.TypeFor[*X2]()},
	{reflect.TypeFor[*T3](), reflect.TypeFor[*E3](), reflect.TypeFor[*X3]()},
	{reflect.TypeFor[*T4](), reflect.TypeFor[*E4](), reflect.TypeFor[*X4]()},
	{reflect.TypeFor[*T5](), reflect.TypeFor[*E5](), reflect.TypeFor[*X5]()},
	{reflect.TypeFor[*T6](), reflect.TypeFor[*E6](), reflect.TypeFor[*X6]()},
	{reflect.TypeFor[*T7](), reflect.TypeFor[*E7](), reflect.TypeFor[*X7]()},
}

// checkOf makes a resources.Check for the menu type T that hands f its *res.
func checkOf[T holder](f func(context.Context, *res) error) resources.Option {
	return resources.Check(func(ctx context.Context, v T) error { return f(ctx, v.get()) })
}

// checks[k][closer] makes the health check of node k's type.
var checks = [8][numCloseKinds]func(func(context.Context, *res) error) resources.Option{
	{checkOf[*T0], checkOf[*E0], checkOf[*X0]},
	{checkOf[*T1], checkOf[*E1], checkOf[*X1]},
	{checkOf[*T2], checkOf[*E2], checkOf[*X2]},
	{checkOf[*T3], checkOf[*E3], checkOf[*X3]},
	{checkOf[*T4], checkOf[*E4], checkOf[*X4]},
	{checkOf[*T5], checkOf[*E5], checkOf[*X5]},
	{checkOf[*T6], checkOf[*E6], checkOf[*X6]},
	{checkOf[*T7], checkOf[*E7], checkOf[*X7]},
}
