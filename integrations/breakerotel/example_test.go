package breakerotel_test

import (
	"log"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/httpbreaker/httpbreaker"
	"github.com/httpbreaker/httpbreaker/integrations/breakerotel"
)

// Register a Transport's instruments on the program's MeterProvider (here a
// no-op one; otel.GetMeterProvider() in a program with the SDK set up).
func ExampleRegister() {
	rt, err := httpbreaker.New(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close()
	reg, err := breakerotel.Register(rt, noop.NewMeterProvider(), breakerotel.WithAttributes(attribute.String("client", "menu")))
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Unregister()
}
