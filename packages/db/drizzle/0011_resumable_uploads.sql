CREATE TABLE "storage"."uploads" (
	"id" uuid PRIMARY KEY NOT NULL,
	"owner_id" uuid NOT NULL,
	"file_id" uuid NOT NULL,
	"protocol" text NOT NULL,
	"total_size" bigint NOT NULL,
	"chunk_size" integer NOT NULL,
	"chunk_count" integer NOT NULL,
	"sha256" text,
	"multipart_id" text NOT NULL,
	"status" text DEFAULT 'open' NOT NULL,
	"offset" bigint DEFAULT 0 NOT NULL,
	"tail_key" text,
	"tail_size" integer DEFAULT 0 NOT NULL,
	"locked_until" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "storage"."upload_parts" (
	"upload_id" uuid NOT NULL,
	"part_index" integer NOT NULL,
	"part_number" integer NOT NULL,
	"size" integer NOT NULL,
	"etag" text NOT NULL,
	CONSTRAINT "upload_parts_upload_id_part_index_pk" PRIMARY KEY("upload_id","part_index")
);
--> statement-breakpoint
ALTER TABLE "storage"."upload_parts" ADD CONSTRAINT "upload_parts_upload_id_uploads_id_fk" FOREIGN KEY ("upload_id") REFERENCES "storage"."uploads"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "uploads_expires_idx" ON "storage"."uploads" USING btree ("expires_at");
