package bolt_test

import (
	"testing"

	"github.com/candor-en/candor/storage/bolt"
	"github.com/candor-en/candor/storage/storetest"
	"github.com/candor-en/candor/verification/account"
)

func TestAccountStoreConformance(t *testing.T) {
	storetest.TestAccounts(t, func(t *testing.T) account.Store {
		db, err := bolt.Open(t.TempDir(), bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return bolt.NewAccountStore(db)
	})
}
