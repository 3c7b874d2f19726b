package account

// Actor is who performs an admin action: a signed-in user, or the operator
// at the command line (who may do everything).
type Actor struct {
	// Name is the user's email or "operator".
	Name string
	user *User
}

// operatorName is the name the audit list gives the command line.
const operatorName = "operator"

// Operator returns the command line's actor.
func Operator() Actor { return Actor{Name: operatorName} }

// AsUser returns the actor of signed-in user u.
func AsUser(u *User) Actor { return Actor{Name: u.Email, user: u} }

func (a Actor) can(realm string, need Role) bool {
	if a.user == nil {
		return a.Name == operatorName
	}
	return a.user.Can(realm, need)
}

func (a Actor) system() bool {
	if a.user == nil {
		return a.Name == operatorName
	}
	return a.user.System && !a.user.Disabled
}

func (a Actor) id() string {
	if a.user == nil {
		return ""
	}
	return a.user.ID
}
