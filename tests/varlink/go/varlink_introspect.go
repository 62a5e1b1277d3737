// Introspects a varlink service with the varlink project's Go library, as a
// client nobody here wrote would: org.varlink.service.GetInfo, then
// GetInterfaceDescription of every interface it lists, each description run
// through the library's IDL parser. Prints one JSON object:
//
//	{"info": {...GetInfo's reply...},
//	 "interfaces": {"NAME": {"description": "...", "parse_error": "...",
//	                         "name": "...", "types": [...], "methods": [...], "errors": [...]}}}
//
//	varlink_introspect --varlink=unix:PATH   a running service
//	varlink_introspect --parse=FILE          one description from a file
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/varlink/go/varlink"
	"github.com/varlink/go/varlink/idl"
)

type parsed struct {
	Description string   `json:"description"`
	ParseError  string   `json:"parse_error,omitempty"`
	Name        string   `json:"name,omitempty"`
	Types       []string `json:"types"`
	Methods     []string `json:"methods"`
	Errors      []string `json:"errors"`
}

func parse(description string) parsed {
	p := parsed{Description: description, Types: []string{}, Methods: []string{}, Errors: []string{}}
	i, err := idl.New(description)
	if err != nil {
		p.ParseError = err.Error()
		return p
	}
	p.Name = i.Name
	for _, a := range i.Aliases {
		p.Types = append(p.Types, a.Name)
	}
	for _, m := range i.Methods {
		p.Methods = append(p.Methods, m.Name)
	}
	for _, e := range i.Errors {
		p.Errors = append(p.Errors, e.Name)
	}
	return p
}

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "varlink_introspect: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	address := flag.String("varlink", "", "the service's address (unix:PATH)")
	file := flag.String("parse", "", "parse this interface description file")
	flag.Parse()

	out := map[string]interface{}{}
	interfaces := map[string]parsed{}
	switch {
	case *file != "":
		b, err := os.ReadFile(*file)
		if err != nil {
			die("%v", err)
		}
		interfaces[*file] = parse(string(b))
	case *address != "":
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := varlink.NewConnection(ctx, *address)
		if err != nil {
			die("cannot connect to %s: %v", *address, err)
		}
		defer c.Close()
		var vendor, product, version, url string
		var names []string
		if err := c.GetInfo(ctx, &vendor, &product, &version, &url, &names); err != nil {
			die("GetInfo: %v", err)
		}
		out["info"] = map[string]interface{}{"vendor": vendor, "product": product,
			"version": version, "url": url, "interfaces": names}
		for _, name := range names {
			d, err := c.GetInterfaceDescription(ctx, name)
			if err != nil {
				die("GetInterfaceDescription(%s): %v", name, err)
			}
			interfaces[name] = parse(d)
		}
	default:
		die("usage: varlink_introspect --varlink=unix:PATH | --parse=FILE")
	}
	out["interfaces"] = interfaces
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
}
