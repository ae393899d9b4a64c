//go:build tools

// Package tools pins github.com/ipfs/kubo/cmd/ipfs so `go mod tidy` keeps Kubo and its dependencies in
// go.mod/go.sum. Nothing here is compiled: build with
//
//	go build -o bin/ipfs github.com/ipfs/kubo/cmd/ipfs
package tools

import _ "github.com/ipfs/kubo/cmd/ipfs"
