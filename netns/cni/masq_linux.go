package cni

import (
	"fmt"

	"github.com/coreos/go-iptables/iptables"
)

// The built-in network masquerades traffic that leaves its subnet with one rule for the whole
// subnet, added once, instead of the bridge plugin's ipMasq, which adds and deletes a chain
// per pod: on this kind of node every iptables call costs tens of milliseconds, and those
// calls were most of a pod's start and stop time.
func masqueradeRule(c Config) []string {
	return []string{"-s", c.Subnet, "!", "-d", c.Subnet,
		"-m", "comment", "--comment", "peapod network " + c.NetworkName, "-j", "MASQUERADE"}
}

// ensureMasquerade adds the built-in network's masquerade rule unless this Network already
// did. The rule stays when the daemon stops: running pods still need it.
func (n *Network) ensureMasquerade() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.masqueradeDone {
		return nil
	}
	ipt, err := iptables.New()
	if err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	if err := ipt.AppendUnique("nat", "POSTROUTING", masqueradeRule(n.cfg)...); err != nil {
		return fmt.Errorf("add masquerade rule for %s: %w", n.cfg.Subnet, err)
	}
	n.masqueradeDone = true
	return nil
}

// RemoveMasquerade deletes the built-in network's masquerade rule: for a node (or a test)
// that no longer runs pods on that network.
func (n *Network) RemoveMasquerade() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	ipt, err := iptables.New()
	if err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	if err := ipt.DeleteIfExists("nat", "POSTROUTING", masqueradeRule(n.cfg)...); err != nil {
		return fmt.Errorf("remove masquerade rule for %s: %w", n.cfg.Subnet, err)
	}
	n.masqueradeDone = false
	return nil
}
