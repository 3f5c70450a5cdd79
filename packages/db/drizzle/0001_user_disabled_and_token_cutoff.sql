ALTER TABLE "auth"."users" ADD COLUMN "disabled_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "auth"."users" ADD COLUMN "tokens_valid_after" timestamp with time zone;