//go:build !linux

package nodestat

func readTree(int) (tree, error) { return tree{}, ErrUnsupported }
