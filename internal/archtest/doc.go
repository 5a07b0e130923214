// Package archtest holds the tests that keep peapod's architecture honest: which package may
// import which (DESIGN.md §2), one importer per third-party library, and a doc comment on
// every package, and the README's layout table listing every package. It has no code of its
// own.
package archtest
