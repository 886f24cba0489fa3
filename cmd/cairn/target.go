package main

import (
	"os"
	"strings"

	"github.com/cairn-backup/cairn/plan"
)

// target is the one repository a command works on: --repo (else
// $CAIRN_REPOSITORY) as a path or URL, or the name of a repository of the
// configuration file ($CAIRN_CONFIG, else the default), whose definition
// then says where it is and where its password comes from. A configured
// name wins over a directory of the same name in the working directory;
// a configuration that cannot be read matters only if no such directory
// exists.
func (g *globalFlags) target() (plan.Target, error) {
	arg, err := g.repoURL()
	if err != nil {
		return plan.Target{}, err
	}
	if strings.Contains(arg, "/") {
		return plan.Bare(arg), nil
	}
	cfg, err := loadDefaultConfig()
	if err != nil {
		if _, serr := os.Stat(arg); serr == nil {
			return plan.Bare(arg), nil
		}
		return plan.Target{}, err
	}
	return cfg.Resolve(arg), nil
}

func loadDefaultConfig() (*plan.Config, error) {
	path, err := plan.DefaultPath()
	if err != nil {
		return nil, err
	}
	return plan.Load(path)
}
