// Package treetest holds test doubles for fs/tree: Plans, an in-memory
// tree.Plans that validates definitions with plan.ParsePlan.
package treetest
