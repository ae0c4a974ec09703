module uffdkit/client

go 1.19
