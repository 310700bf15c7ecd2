package gameserver

import (
	"errors"

	"github.com/gameserver/gameserver/internal/cluster"
)

// newDirectory connects to the cluster's directory.
var newDirectory = func(url string) (cluster.Directory, error) {
	return nil, errors.New("cluster directory not available in this build")
}
