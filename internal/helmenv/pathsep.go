package helmenv

import "os"

// pathListSeparator separates the files of a KUBECONFIG list (":" on Unix, ";" on Windows).
var pathListSeparator = string(os.PathListSeparator)
